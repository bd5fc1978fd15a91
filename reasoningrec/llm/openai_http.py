"""OpenAI-compatible chat backend over HTTP: vLLM, TGI, Ollama, llama.cpp server, OpenAI itself.

Requests run concurrently (at most ``max_concurrency`` in flight), spread round-robin over one or
more base URLs (scale-out over several servers). Rate limits (429), server errors (5xx), timeouts and
connection failures are retried with exponential backoff plus jitter; after ``max_retries`` retries a
:class:`LLMBackendError` names the URL and the last status. The API key is read from the environment
at each request and never stored, logged or shown in a repr.

``Retry-After`` (delta-seconds or an HTTP date) on a retried status is honoured as a lower bound on
the wait, up to ``retry_after_cap_s``. A server asking for longer (a daily quota: ``Retry-After:
86400``) fails that request at once, with a message naming the URL, the asked wait and the cap:
waiting the cap and asking again would only collect the same answer ``max_retries`` times.

Every reply goes to ``generate``'s ``on_reply`` sink as soon as it arrives (from the calling thread,
grouped when several finish together). When a request fails for good, the requests already on the
wire finish and are handed over too, the ones still queued or waiting to retry are dropped, and the
first failure is raised. Behind :class:`~reasoningrec.llm.cache.CachedBackend` every reply handed over
is committed (its error adds how many were kept), so a rerun sends only the requests without one.
"""

from __future__ import annotations

import email.utils
import itertools
import logging
import os
import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from reasoningrec.llm.base import (
    Generation,
    GenerationSettings,
    LLMBackendError,
    Message,
    ReplySink,
    check_batch,
)
from reasoningrec.progress import progress as progress_bar

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
DEFAULT_RETRY_AFTER_CAP_S = 300.0
_FINISH = {"stop": "stop", "length": "length", "eos": "stop", "eos_token": "stop", "stop_sequence": "stop"}


def parse_base_urls(value: str | Sequence[str]) -> list[str]:
    """One or more base URLs from a comma-separated string or a list, without trailing slashes."""
    parts = value.split(",") if isinstance(value, str) else list(value)
    urls = [part.strip().rstrip("/") for part in parts if part and part.strip()]
    if not urls:
        raise ValueError(f"no base URL given (got {value!r})")
    for url in urls:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"base URL {url!r} must start with http:// or https://")
    return urls


def backoff_delay(attempt: int, *, base: float, cap: float, retry_after: float | None, rng: random.Random) -> float:
    """Seconds to wait before retry number ``attempt`` (0-based).

    Exponential (base * 2**attempt, capped) with "equal jitter" so many clients do not retry in
    lockstep; a server's ``Retry-After`` is a lower bound.
    """
    ceiling = min(cap, base * (2**attempt))
    delay = ceiling / 2 + rng.uniform(0, ceiling / 2)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date); None when absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def request_body(model: str, messages: Sequence[Message], settings: GenerationSettings) -> dict[str, Any]:
    """The chat-completions JSON body for one conversation."""
    return {
        "model": model,
        "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
        "temperature": settings.temperature,
        "top_p": settings.top_p,
        "max_tokens": settings.max_new_tokens,
        "seed": settings.seed,
        "n": 1,
        "stream": False,
    }


def parse_response(data: Any, url: str) -> Generation:
    """A :class:`Generation` from a chat-completions response body; clear error when malformed."""
    try:
        choice = data["choices"][0]
        text = choice["message"]["content"] or ""
    except (KeyError, IndexError, TypeError):
        raise LLMBackendError(
            f"POST {url}: response is not a chat completion (expected choices[0].message.content): {str(data)[:200]}"
        ) from None
    usage = data.get("usage") or {}
    reason = _FINISH.get(str(choice.get("finish_reason") or "stop"), "stop")
    return Generation(
        text=text.strip(),
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        finish_reason=reason,
    )


class OpenAIBackend:
    """Chat completions from one or more OpenAI-compatible servers.

    Args:
        model: the model name the server expects.
        base_urls: ``http://host:8000/v1``, a comma-separated list or a list of them.
        api_key_env: name of the environment variable holding the key (unset: no Authorization header).
        max_concurrency: requests in flight at once (over all URLs).
        timeout_s: per-request timeout (connect, read, write, pool).
        max_retries: retries after the first attempt of each request.
        backoff_base_s / backoff_max_s: first backoff delay and its cap.
        retry_after_cap_s: the longest ``Retry-After`` waited for; a longer one fails the request.
    """

    name = "openai"

    def __init__(
        self,
        model: str,
        base_urls: str | Sequence[str],
        *,
        api_key_env: str = "OPENAI_API_KEY",
        max_concurrency: int = 8,
        timeout_s: float = 120.0,
        max_retries: int = 5,
        backoff_base_s: float = 1.0,
        backoff_max_s: float = 60.0,
        retry_after_cap_s: float = DEFAULT_RETRY_AFTER_CAP_S,
        seed: int | None = None,
    ):
        import httpx

        self.model_id = model
        self.base_urls = parse_base_urls(base_urls)
        self.api_key_env = api_key_env
        self.max_concurrency = max(1, max_concurrency)
        self.chunk_size = self.max_concurrency * 4  # enough to keep every slot busy between commits
        self.timeout_s = timeout_s
        self.max_retries = max(0, max_retries)
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.retry_after_cap_s = max(0.0, retry_after_cap_s)
        self._rng = random.Random(seed)
        self._next = itertools.count()
        self._lock = threading.Lock()
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(max_connections=self.max_concurrency, max_keepalive_connections=self.max_concurrency),
        )

    def __repr__(self) -> str:
        return (
            f"OpenAIBackend(model_id={self.model_id!r}, base_urls={self.base_urls!r}, "
            f"api_key_env={self.api_key_env!r}, max_concurrency={self.max_concurrency})"
        )

    def close(self) -> None:
        self._client.close()

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _pick_url(self) -> str:
        with self._lock:
            return self.base_urls[next(self._next) % len(self.base_urls)]

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        with self._lock:
            return backoff_delay(
                attempt,
                base=self.backoff_base_s,
                cap=self.backoff_max_s,
                retry_after=retry_after,
                rng=self._rng,
            )

    def complete(
        self, messages: Sequence[Message], settings: GenerationSettings, cancel: threading.Event | None = None
    ) -> Generation:
        """One chat completion, retried on transient failures; stops early once ``cancel`` is set."""
        import httpx

        cancel = cancel if cancel is not None else threading.Event()
        body = request_body(self.model_id, messages, settings)
        last = "no attempt"
        url = ""
        for attempt in range(self.max_retries + 1):
            if cancel.is_set():
                raise LLMBackendError(f"POST {url or self.base_urls[0]}: cancelled after another request failed")
            # Each attempt takes the next server in turn: a sick server does not hold the request.
            url = f"{self._pick_url()}/chat/completions"
            retry_after = None
            try:
                response = self._client.post(url, json=body, headers=self._headers())
            except httpx.TimeoutException as exc:
                last = f"timeout after {self.timeout_s:g} s ({type(exc).__name__})"
            except httpx.TransportError as exc:
                last = f"connection error ({type(exc).__name__}: {exc})"
            except httpx.RequestError as exc:  # e.g. a body that fails to decode
                last = f"request error ({type(exc).__name__}: {exc})"
            else:
                if response.status_code == 200:
                    try:
                        data = response.json()
                    except ValueError:
                        raise LLMBackendError(
                            f"POST {url}: status 200 but the body is not JSON: {response.text[:200]!r}"
                        ) from None
                    return parse_response(data, url)
                last = f"HTTP {response.status_code}: {response.text[:200]}"
                if response.status_code not in RETRY_STATUSES:
                    raise LLMBackendError(f"POST {url} failed with {last} (not retried)")
                header = response.headers.get("Retry-After")
                retry_after = parse_retry_after(header)
                if retry_after is not None and retry_after > self.retry_after_cap_s:
                    raise LLMBackendError(
                        f"POST {url} failed with {last}; the server asks to retry after "
                        f"{retry_after:.0f} s (Retry-After: {header}), above llm.retry_after_cap_s = "
                        f"{self.retry_after_cap_s:g} s: not retried (rerun later, or raise the cap)"
                    )
            if attempt < self.max_retries:
                delay = self._backoff(attempt, retry_after)
                log.warning("POST %s: %s; retry %d/%d in %.2f s", url, last, attempt + 1, self.max_retries, delay)
                cancel.wait(delay)  # a failure elsewhere in the batch ends the wait early
        raise LLMBackendError(
            f"POST {url} failed after {self.max_retries + 1} attempts ({self.max_retries} retries); last status: {last}"
        )

    def generate(
        self,
        batch: list[list[Message]],
        settings: GenerationSettings,
        progress: str | None = None,
        on_reply: ReplySink | None = None,
    ) -> list[Generation]:
        """Replies in input order; each one goes to ``on_reply`` as soon as it arrives.

        The first request to fail for good cancels the rest of the batch (queued requests are not
        sent, retries stop); requests already in flight still finish and reach ``on_reply``. Then
        that first failure is raised.
        """
        check_batch(batch)
        if not batch:
            return []
        results: list[Generation | None] = [None] * len(batch)
        cancel = threading.Event()
        failure: BaseException | None = None
        pool = ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(batch)))
        bar = progress_bar(len(batch), progress, "replies")
        try:
            pending: dict[Future, int] = {
                pool.submit(self.complete, conv, settings, cancel): i for i, conv in enumerate(batch)
            }
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                ready: list[tuple[int, Generation]] = []
                for future in done:
                    i = pending.pop(future)
                    if future.cancelled():
                        continue
                    error = future.exception()
                    if error is None:
                        reply = results[i] = future.result()
                        ready.append((i, reply))
                    elif failure is None:
                        failure = error
                        cancel.set()  # requests still retrying give up instead of holding the error back
                        for other in pending:
                            other.cancel()
                if ready and on_reply is not None:
                    on_reply(sorted(ready, key=lambda pair: pair[0]))
                bar.update(len(ready))
        except BaseException:  # the sink failed, or an interrupt: drop what has not been sent
            cancel.set()
            bar.close(failed=True)
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        bar.close(failed=failure is not None)
        if failure is not None:
            raise failure
        return [g for g in results if g is not None]
