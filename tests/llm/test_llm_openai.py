"""The OpenAI-compatible backend against real HTTP servers on 127.0.0.1 that misbehave on purpose."""

from __future__ import annotations

import email.utils
import json
import logging
import math
import re
import socket
import sqlite3
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from reasoningrec.config import LLMConfig
from reasoningrec.llm import CACHE_FILE, make_backend
from reasoningrec.llm.base import GenerationSettings, LLMBackendError
from reasoningrec.llm.openai_http import (
    OpenAIBackend,
    backoff_delay,
    parse_base_urls,
    parse_retry_after,
)

SECRET = "sk-test-0123456789-do-not-leak"


class FakeServer:
    """A chat-completions server on 127.0.0.1 that misbehaves as told.

    ``script`` holds actions served to the first requests, in turn; ``by_prompt`` maps a prompt (the
    last message) to the action served every time it is asked; any other request is answered. Actions:
    ``ok``, ``hang`` (answers after 1.5 s), ``status:CODE[:RETRY_AFTER]``, ``badjson`` (a cut-off
    body), ``notchat`` (JSON without choices), ``slow:SECONDS:ACTION``. ``requests`` records each
    request with the status served.
    """

    def __init__(self, name: str, script: list[str] | None = None, by_prompt: dict[str, str] | None = None):
        self.name = name
        self.script = list(script or [])
        self.by_prompt = dict(by_prompt or {})
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def reply(self, code: int, payload: bytes, headers: dict[str, str] | None = None):
                self.send_response(code)
                for key, value in {"Content-Type": "application/json", **(headers or {})}.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                content = body["messages"][-1]["content"]
                record = {
                    "path": self.path,
                    "auth": self.headers.get("Authorization"),
                    "body": body,
                    "prompt": content,
                    "t": time.monotonic(),
                    "wall": time.time(),
                }
                with server.lock:
                    server.requests.append(record)
                    if content in server.by_prompt:
                        action = server.by_prompt[content]
                    else:
                        action = server.script.pop(0) if server.script else "ok"
                while action.startswith("slow:"):
                    _, seconds, action = action.split(":", 2)
                    time.sleep(float(seconds))
                if action == "hang":
                    time.sleep(1.5)
                    action = "ok"
                if action.startswith("status"):
                    _, code, *retry_after = action.split(":", 2)
                    record["status"] = int(code)
                    headers = {"Retry-After": retry_after[0]} if retry_after else {}
                    self.reply(int(code), b'{"error": "busy"}', headers)
                    return
                record["status"] = 200
                if action == "badjson":
                    self.reply(200, b'{"choices": [{"message": {"content": "cut of')
                    return
                if action == "notchat":
                    self.reply(200, b'{"object": "error", "message": "model not loaded"}')
                    return
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
                self.reply(200, payload)

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
        out = backend.generate(convs(6), GenerationSettings(temperature=0.2, top_p=0.8, max_new_tokens=32, seed=3))
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


def test_a_labelled_call_counts_replies_as_they_arrive(monkeypatch, caplog):
    monkeypatch.setenv("REASONINGREC_PROGRESS", "never")
    monkeypatch.setenv("REASONINGREC_PROGRESS_INTERVAL", "0.000001")
    caplog.set_level(logging.INFO, logger="reasoningrec.progress")
    with FakeServer("A") as server:
        backend = make(server.url, max_concurrency=2)
        backend.generate(convs(6), GenerationSettings(), progress="judge")
        backend.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "reasoningrec.progress"]
    assert lines[0] == "judge: 6 replies" and lines[-1].startswith("judge: 6 replies in ")
    counts = [int(line.split(": ")[1].split("/")[0]) for line in lines[1:-1]]
    assert counts == sorted(counts) and all(0 < c < 6 for c in counts) and counts


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


def dead_url() -> str:
    """A 127.0.0.1 URL whose port nothing listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/v1"


def test_retry_after_as_an_http_date_is_waited_for():
    target = math.ceil(time.time() + 0.5)  # HTTP dates have whole seconds: a wait of 0.5-1.5 s
    date = email.utils.formatdate(target, usegmt=True)
    with FakeServer("A", [f"status:503:{date}"]) as server:
        out = make(server.url, max_concurrency=1, retry_after_cap_s=5).generate(convs(1), GenerationSettings())
    assert out[0].text == "echo q0 from A"
    first, second = server.requests
    assert second["wall"] >= target - 0.05  # waited for the date, not the 10-50 ms backoff
    assert second["wall"] - first["wall"] < 3


@pytest.mark.parametrize("kind", ["delta", "http-date"])
def test_retry_after_above_the_cap_fails_at_once_with_a_clear_message(kind, caplog):
    value = "86400" if kind == "delta" else email.utils.formatdate(time.time() + 3600, usegmt=True)
    with FakeServer("A", [f"status:429:{value}"] * 5) as server:
        backend = make(server.url, max_concurrency=1, max_retries=3, retry_after_cap_s=2)
        start = time.monotonic()
        with pytest.raises(LLMBackendError) as err:
            backend.generate(convs(1), GenerationSettings())
        elapsed = time.monotonic() - start
    message = str(err.value)
    assert f"POST {server.url}/chat/completions" in message and "HTTP 429" in message
    assert f"Retry-After: {value}" in message and "llm.retry_after_cap_s = 2 s" in message
    asked = int(re.search(r"retry after (\d+) s", message).group(1))
    assert asked == 86400 if kind == "delta" else 3598 <= asked <= 3600
    assert len(server.requests) == 1  # not retried, and no day-long sleep
    assert elapsed < 1.5


def test_retry_after_within_the_cap_is_not_cut_short_by_the_backoff_ceiling():
    with FakeServer("A", ["status:429:0.4"]) as server:
        make(server.url, max_concurrency=1, backoff_max_s=0.01, retry_after_cap_s=0.5).generate(
            convs(1), GenerationSettings()
        )
    first, second = server.requests
    assert second["t"] - first["t"] >= 0.4


@pytest.mark.parametrize(
    ("action", "expected"),
    [("badjson", "body is not JSON"), ("notchat", "not a chat completion")],
)
def test_malformed_200_replies_are_clear_errors_not_retried(action, expected):
    with FakeServer("A", [action]) as server, pytest.raises(LLMBackendError, match=expected) as err:
        make(server.url, max_concurrency=1).generate(convs(1), GenerationSettings())
    assert f"{server.url}/chat/completions" in str(err.value)
    assert len(server.requests) == 1


def test_a_server_that_always_hangs_fails_after_the_timeouts():
    with FakeServer("A", ["hang"] * 5) as server:
        backend = make(server.url, timeout_s=0.2, max_retries=1, max_concurrency=1)
        start = time.monotonic()
        with pytest.raises(LLMBackendError) as err:
            backend.generate(convs(1), GenerationSettings())
        elapsed = time.monotonic() - start
    assert "2 attempts" in str(err.value) and "timeout after 0.2 s" in str(err.value)
    assert len(server.requests) == 2
    assert elapsed < 1.4  # two 0.2 s timeouts, not the 1.5 s hangs


def test_connection_refused_fails_with_the_url_and_the_cause():
    url = dead_url()
    start = time.monotonic()
    with pytest.raises(LLMBackendError) as err:
        make(url, max_retries=2, max_concurrency=1).generate(convs(1), GenerationSettings())
    message = str(err.value)
    assert f"POST {url}/chat/completions failed after 3 attempts" in message
    assert "connection error (ConnectError" in message
    assert time.monotonic() - start < 2


def test_replies_reach_on_reply_on_the_calling_thread_before_a_failure_is_raised():
    caller = threading.get_ident()
    seen: list[tuple[int, str, int]] = []

    def on_reply(pairs):
        seen.extend((i, g.text, threading.get_ident()) for i, g in pairs)

    with (
        FakeServer("A", by_prompt={"q3": "slow:0.5:status:400"}) as server,
        pytest.raises(LLMBackendError, match="HTTP 400"),
    ):
        make(server.url, max_concurrency=2).generate(convs(6), GenerationSettings(), on_reply=on_reply)
    # q3 is slow to fail: the other slot answers q2, q4 and q5 meanwhile (q0 and q1 went first).
    assert sorted(i for i, _, _ in seen) == [0, 1, 2, 4, 5]
    assert all(text == f"echo q{i} from A" for i, text, _ in seen)
    assert {thread for _, _, thread in seen} == {caller}
    assert len(server.requests) == 6


def test_a_failure_ends_the_retry_waits_of_the_other_requests():
    with FakeServer("A", by_prompt={"q0": "status:429:5", "q1": "slow:0.2:status:400"}) as server:
        backend = make(server.url, max_concurrency=2, retry_after_cap_s=10)
        start = time.monotonic()
        with pytest.raises(LLMBackendError, match="HTTP 400"):
            backend.generate(convs(2), GenerationSettings())
        elapsed = time.monotonic() - start
    assert elapsed < 2  # q0 stopped waiting out its 5 s Retry-After when q1 failed
    assert [r["prompt"] for r in server.requests].count("q0") == 1


def cached_openai(url: str, cache_dir, **overrides):
    """The OpenAI backend behind the response cache, built from settings as the pipeline does."""
    settings = {
        "backend": "openai",
        "model": "test-model",
        "base_url": url,
        "api_key_env": "RR_TEST_KEY",
        "max_concurrency": 2,  # chunks of 4 x 2 = 8 requests
        "timeout_s": 2,
        "max_retries": 1,
        "backoff_base_s": 0.01,
        "backoff_max_s": 0.02,
        "retry_after_cap_s": 1,
        **overrides,
    }
    return make_backend(LLMConfig(**settings), cache_dir)


def cached_prompts(db) -> set[str]:
    conn = sqlite3.connect(db)
    try:
        requests = [json.loads(row[0]) for row in conn.execute("SELECT request FROM responses")]
    finally:
        conn.close()
    return {r["messages"][-1]["content"] for r in requests}


@pytest.mark.parametrize(
    "failure",
    ["slow:0.4:status:500", "slow:0.4:status:429:86400", "slow:0.4:badjson", "hang"],
)
def test_a_failure_after_partial_success_keeps_every_reply_and_the_rerun_sends_only_the_rest(tmp_path, failure):
    names = [f"q{i}" for i in range(20)]
    settings = GenerationSettings()
    # The cache sends q0-q7, q8-q15, q16-q19 (shortest first); q12 fails slowly (0.4 s, or two 0.8 s
    # timeouts), so the other slot answers q13-q15 meanwhile: 8 + 7 replies arrive, q16-q19 are never sent.
    with FakeServer("A", by_prompt={"q12": failure}) as server:
        backend = cached_openai(server.url, tmp_path, timeout_s=0.8)
        with pytest.raises(LLMBackendError) as err:
            backend.generate(convs(20), settings, progress="describe")
        backend.close()
        answered = {r["prompt"] for r in server.requests if r.get("status") == 200 and r["prompt"] != "q12"}
        assert answered == {f"q{i}" for i in range(16)} - {"q12"}
        message = str(err.value)
        assert f"POST {server.url}/chat/completions" in message
        assert {
            "status:500": "HTTP 500",
            "status:429:86400": "retry after 86400 s",
            "badjson": "not JSON",
            "hang": "timeout after 0.8 s",
        }[failure.removeprefix("slow:0.4:")] in message
        assert (
            f"describe: 15 of the 20 replies this call had to generate are kept in {tmp_path / CACHE_FILE}" in message
        )
        assert "a rerun sends only the 5 requests without a reply" in message
        assert cached_prompts(tmp_path / CACHE_FILE) == answered

        server.by_prompt.clear()
        server.requests.clear()
        rerun = cached_openai(server.url, tmp_path)  # a fresh backend, as in a new process
        out = rerun.generate(convs(20), settings)
        rerun.close()
    sent = [r["prompt"] for r in server.requests]
    assert sorted(sent) == sorted(["q12", "q16", "q17", "q18", "q19"])  # each missing one, once
    assert [g.text for g in out] == [f"echo {n} from A" for n in names]
    assert [g.cached for g in out] == [n not in sent for n in names]
    assert cached_prompts(tmp_path / CACHE_FILE) == set(names)


def test_connection_refused_through_the_cache_keeps_nothing_and_says_so(tmp_path):
    backend = cached_openai(dead_url(), tmp_path)
    with pytest.raises(LLMBackendError) as err:
        backend.generate(convs(3), GenerationSettings())
    assert "ConnectError" in str(err.value)
    assert "0 of the 3 replies this call had to generate are kept" in str(err.value)
    assert cached_prompts(tmp_path / CACHE_FILE) == set()


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
