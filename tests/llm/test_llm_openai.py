"""The OpenAI-compatible backend against real HTTP servers on 127.0.0.1 that misbehave on purpose."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from reasoningrec.llm.base import GenerationSettings, LLMBackendError
from reasoningrec.llm.openai_http import (
    OpenAIBackend,
    backoff_delay,
    parse_base_urls,
    parse_retry_after,
)

SECRET = "sk-test-0123456789-do-not-leak"


class FakeServer:
    """A chat-completions server; ``script`` holds the failures to serve before normal replies."""

    def __init__(self, name: str, script: list[str] | None = None):
        self.name = name
        self.script = list(script or [])
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests.append(
                        {
                            "path": self.path,
                            "auth": self.headers.get("Authorization"),
                            "body": body,
                            "t": time.monotonic(),
                        }
                    )
                    action = server.script.pop(0) if server.script else "ok"
                if action == "hang":
                    time.sleep(1.5)
                    action = "ok"
                if action.startswith("status"):
                    _, code, *retry_after = action.split(":")
                    self.send_response(int(code))
                    if retry_after:
                        self.send_header("Retry-After", retry_after[0])
                    payload = b'{"error": "busy"}'
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                content = body["messages"][-1]["content"]
                payload = json.dumps(
                    {
                        "choices": [
                            {
                                "message": {
                                    "role": "assistant",
                                    "content": f" echo {content} from {server.name}",
                                },
                                "finish_reason": "length" if body["max_tokens"] < 5 else "stop",
                            }
                        ],
                        "usage": {"prompt_tokens": len(content), "completion_tokens": 4},
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def convs(n):
    return [[{"role": "system", "content": "short"}, {"role": "user", "content": f"q{i}"}] for i in range(n)]


def make(urls, **kwargs):
    defaults = {
        "api_key_env": "RR_TEST_KEY",
        "max_concurrency": 4,
        "timeout_s": 5,
        "max_retries": 3,
        "backoff_base_s": 0.01,
        "backoff_max_s": 0.05,
        "seed": 0,
    }
    return OpenAIBackend("test-model", urls, **{**defaults, **kwargs})


def test_replies_in_order_with_bearer_key_that_never_leaks(monkeypatch, caplog):
    monkeypatch.setenv("RR_TEST_KEY", SECRET)
    caplog.set_level(logging.DEBUG)
    with FakeServer("A", ["status:500"]) as server:
        backend = make(server.url)
        out = backend.generate(
            convs(6), GenerationSettings(temperature=0.2, top_p=0.8, max_new_tokens=32, seed=3)
        )
        backend.close()
    assert [g.text for g in out] == [f"echo q{i} from A" for i in range(6)]
    assert [g.prompt_tokens for g in out] == [2] * 6 and all(g.completion_tokens == 4 for g in out)
    assert {r["auth"] for r in server.requests} == {f"Bearer {SECRET}"}
    assert {r["path"] for r in server.requests} == {"/v1/chat/completions"}
    body = server.requests[-1]["body"]
    assert (body["model"], body["temperature"], body["top_p"], body["max_tokens"], body["seed"]) == (
        "test-model",
        0.2,
        0.8,
        32,
        3,
    )
    assert body["messages"][0] == {"role": "system", "content": "short"}
    assert "HTTP 500" in caplog.text  # the retry was logged...
    assert SECRET not in caplog.text  # ...without the key
    assert SECRET not in repr(backend) and SECRET not in str(vars(backend))


def test_no_key_in_environment_sends_no_authorization(monkeypatch):
    monkeypatch.delenv("RR_TEST_KEY", raising=False)
    with FakeServer("A") as server:
        out = make(server.url).generate(convs(1), GenerationSettings(max_new_tokens=2))
    assert server.requests[0]["auth"] is None
    assert out[0].finish_reason == "length"


def test_retries_429_with_retry_after_then_500_then_succeeds():
    with FakeServer("A", ["status:429:0.3", "status:500"]) as server:
        out = make(server.url, max_concurrency=1).generate(convs(1), GenerationSettings())
    assert out[0].text == "echo q0 from A"
    times = [r["t"] for r in server.requests]
    assert len(times) == 3
    assert times[1] - times[0] >= 0.3  # Retry-After honoured over the 10-50 ms backoff
    assert times[2] - times[1] < 0.3


def test_hang_past_the_timeout_is_retried():
    with FakeServer("A", ["hang"]) as server:
        start = time.monotonic()
        out = make(server.url, timeout_s=0.3, max_concurrency=1).generate(convs(1), GenerationSettings())
        elapsed = time.monotonic() - start
    assert out[0].text == "echo q0 from A"
    assert len(server.requests) == 2
    assert elapsed < 1.5  # did not wait for the hanging reply


def test_final_error_names_url_and_last_status():
    with FakeServer("A", ["status:503"] * 10) as server, pytest.raises(LLMBackendError) as err:
        make(server.url, max_retries=2, max_concurrency=1).generate(convs(1), GenerationSettings())
    message = str(err.value)
    assert f"{server.url}/chat/completions" in message
    assert "503" in message and "3 attempts" in message
    assert len(server.requests) == 3


def test_client_errors_are_not_retried():
    with FakeServer("A", ["status:400"]) as server, pytest.raises(LLMBackendError, match="HTTP 400"):
        make(server.url).generate(convs(1), GenerationSettings())
    assert len(server.requests) == 1


def test_round_robin_over_two_servers():
    with FakeServer("A") as a, FakeServer("B") as b:
        out = make(f"{a.url}, {b.url}").generate(convs(8), GenerationSettings())
    assert len(a.requests) == 4 and len(b.requests) == 4
    assert {g.text.rsplit(" ", 1)[1] for g in out} == {"A", "B"}
    assert [g.text.split()[1] for g in out] == [f"q{i}" for i in range(8)]


def test_dead_server_is_skipped_by_retrying_on_the_next():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    with FakeServer("A") as alive:
        out = make([dead, alive.url], max_concurrency=2).generate(convs(4), GenerationSettings())
    assert [g.text for g in out] == [f"echo q{i} from A" for i in range(4)]


def test_helpers():
    assert parse_base_urls("http://a:1/v1/, https://b/v1") == ["http://a:1/v1", "https://b/v1"]
    assert parse_base_urls(["http://a/v1"]) == ["http://a/v1"]
    with pytest.raises(ValueError, match="http"):
        parse_base_urls("a:1/v1")
    with pytest.raises(ValueError, match="no base URL"):
        parse_base_urls(" , ")
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after("Thu, 01 Jan 1970 00:00:10 GMT", now=4.0) == pytest.approx(6.0)
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
    import random

    rng = random.Random(0)
    delays = [backoff_delay(a, base=1, cap=8, retry_after=None, rng=rng) for a in range(6)]
    for attempt, delay in enumerate(delays):
        ceiling = min(8, 2**attempt)
        assert ceiling / 2 <= delay <= ceiling
    assert backoff_delay(0, base=1, cap=8, retry_after=30, rng=rng) == 30
