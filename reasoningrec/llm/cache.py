"""A persistent, content-addressed response cache in front of any :class:`ChatBackend`.

Each reply is stored under the SHA-256 of (backend name, model id, messages, settings). Hits are
answered from disk without calling the backend. Misses are generated in chunks. A backend that takes
an ``on_reply`` sink (every backend here does) hands each reply over as soon as it is ready, and the
cache commits it at once in its own SQLite transaction (WAL journal; one transaction per group of
replies that finished together): a failed request, a kill or a crash loses only the requests still in
flight, never a finished reply, and a rerun sends just the requests without one. A backend without
the sink is committed a chunk at a time, when its ``generate`` returns. Error replies are never
stored, so they are retried on the next run.

All writes go through one connection behind a lock, on the thread that called ``generate`` (the
OpenAI backend hands replies back to that thread from its pool), so concurrent requests never write
SQLite concurrently; other processes share the file through SQLite's own locking.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, replace
from pathlib import Path

from reasoningrec.llm.base import (
    ChatBackend,
    Generation,
    GenerationSettings,
    LLMBackendError,
    Message,
    ReplySink,
    check_batch,
)
from reasoningrec.progress import progress as progress_bar

log = logging.getLogger(__name__)

# Bump when the key derivation changes: old entries then simply stop matching.
KEY_VERSION = 1
DEFAULT_CHUNK = 16

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    backend TEXT NOT NULL,
    model TEXT NOT NULL,
    request TEXT NOT NULL,
    text TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    finish_reason TEXT NOT NULL,
    created REAL NOT NULL
)
"""


def request_json(backend: str, model_id: str, messages: Sequence[Message], settings: GenerationSettings) -> str:
    """Canonical JSON of one request: equal requests give equal strings, whatever the dict order."""
    payload = {
        "v": KEY_VERSION,
        "backend": backend,
        "model": model_id,
        "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
        "settings": asdict(settings),
    }
    return json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def cache_key(backend: str, model_id: str, messages: Sequence[Message], settings: GenerationSettings) -> str:
    """Hex SHA-256 of :func:`request_json`."""
    return hashlib.sha256(request_json(backend, model_id, messages, settings).encode("utf-8")).hexdigest()


def chunked(items: Sequence, size: int) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class ResponseStore:
    """The SQLite file behind the cache: thread-safe, many processes may read and write it at once."""

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 60.0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, timeout=busy_timeout_s, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed chunk survives even a power cut, not only a killed process.
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute(_SCHEMA)

    def get_many(self, keys: Sequence[str]) -> dict[str, Generation]:
        """The stored replies among ``keys`` (marked ``cached=True``)."""
        found: dict[str, Generation] = {}
        with self._lock:
            for part in chunked(list(dict.fromkeys(keys)), 500):  # SQLite caps bound parameters
                marks = ",".join("?" * len(part))
                rows = self._conn.execute(
                    "SELECT key, text, prompt_tokens, completion_tokens, finish_reason "
                    f"FROM responses WHERE key IN ({marks})",
                    list(part),
                ).fetchall()
                for key, text, prompt_tokens, completion_tokens, finish_reason in rows:
                    found[key] = Generation(text, prompt_tokens, completion_tokens, finish_reason, cached=True)
        return found

    def put_many(self, rows: Sequence[tuple[str, str, str, str, Generation]]) -> None:
        """Store ``(key, backend, model, request_json, generation)`` rows in one transaction."""
        now = time.time()
        values = [
            (key, backend, model, request, g.text, g.prompt_tokens, g.completion_tokens, g.finish_reason, now)
            for key, backend, model, request, g in rows
        ]
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany("INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", values)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def __len__(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def accepts_on_reply(backend: ChatBackend) -> bool:
    """Whether ``backend.generate`` takes the ``on_reply`` sink (by name or through ``**kwargs``)."""
    try:
        parameters = inspect.signature(backend.generate).parameters.values()
    except (TypeError, ValueError):  # builtins or C callables without a signature
        return False
    return any(p.name == "on_reply" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


class CachedBackend:
    """A :class:`ChatBackend` that answers repeated requests from a persistent cache.

    Args:
        backend: the backend that generates misses.
        cache_path: the SQLite file (created with its folder when absent).
        chunk_size: misses per backend call; default: the backend's ``chunk_size`` or
            ``batch_size`` attribute, else 16.
    """

    def __init__(self, backend: ChatBackend, cache_path: str | Path, chunk_size: int | None = None):
        self.backend = backend
        self.name = backend.name
        self.model_id = backend.model_id
        self.store = ResponseStore(cache_path)
        preferred = getattr(backend, "chunk_size", None) or getattr(backend, "batch_size", None)
        self.chunk_size = max(1, int(chunk_size or preferred or DEFAULT_CHUNK))
        self.streams = accepts_on_reply(backend)
        # Devices the backend generates on at once (several local workers): callers size their chunks by it.
        self.parallelism = int(getattr(backend, "parallelism", 1))
        self.hits = 0
        self.misses = 0

    def __repr__(self) -> str:
        return f"CachedBackend({self.backend!r}, cache_path={str(self.store.path)!r})"

    def generate(
        self,
        batch: list[list[Message]],
        settings: GenerationSettings,
        progress: str | None = None,
        on_reply: ReplySink | None = None,
    ) -> list[Generation]:
        """Replies in input order: cached ones from disk, the rest from the backend, each
        committed as it arrives. A backend failure is re-raised after every finished reply is
        stored; an :class:`LLMBackendError` then also says how many were kept."""
        check_batch(batch)
        requests = [request_json(self.name, self.model_id, conv, settings) for conv in batch]
        keys = [hashlib.sha256(r.encode("utf-8")).hexdigest() for r in requests]
        found = self.store.get_many(keys)
        positions: dict[str, list[int]] = {}
        for i, key in enumerate(keys):
            positions.setdefault(key, []).append(i)

        # One backend call per distinct missing request, shortest prompts together (less padding).
        first_of = {key: where[0] for key, where in positions.items() if key not in found}
        todo = sorted(first_of.values(), key=lambda i: len(requests[i]))
        hits = sum(1 for key in keys if key in found)
        self.hits += hits
        label = progress or "generate"
        # A labelled call is a step of its own; an unlabelled one is a part of a step that shows progress.
        log.log(
            logging.INFO if progress else logging.DEBUG,
            "%s: %d of %d replies cached, %d to generate",
            label,
            hits,
            len(batch),
            len(todo),
        )
        if on_reply is not None and hits:
            on_reply([(i, found[key]) for i, key in enumerate(keys) if key in found])

        stored: set[str] = set()

        def served(key: str, i: int) -> Generation:
            g = found[key]
            # A duplicate of a request generated in this call is served from the cache, not the model.
            return replace(g, cached=True) if not g.cached and first_of.get(key) != i else g

        def keep(pairs: Sequence[tuple[int, Generation]]) -> None:
            """Commit fresh replies (``pairs`` index into ``batch``) and pass them on."""
            rows = [
                (keys[i], self.name, self.model_id, requests[i], g)
                for i, g in pairs
                if g.finish_reason != "error" and keys[i] not in stored
            ]
            if rows:
                self.store.put_many(rows)
                stored.update(row[0] for row in rows)
            for i, g in pairs:
                found[keys[i]] = replace(g, cached=False)
            self.misses += len(pairs)
            bar.update(len(pairs))
            if on_reply is not None:
                on_reply([(j, served(keys[j], j)) for i, _ in pairs for j in positions[keys[i]]])

        # The display of this call: the backend's own progress, nested inside, stays silent.
        bar = progress_bar(len(todo), progress if todo else None, "replies")
        try:
            for part in chunked(todo, self.chunk_size):
                self._generate_part(batch, part, settings, progress, keep)
        except BaseException as exc:
            bar.close(failed=True)
            kept = len(stored)
            note = (
                f"{kept} of the {len(todo)} replies this call had to generate are kept in "
                f"{self.store.path} ({hits} of {len(batch)} were cached before); a rerun sends only "
                f"the {len(todo) - kept} requests without a reply"
            )
            if isinstance(exc, LLMBackendError):
                raise LLMBackendError(f"{exc}; {progress + ': ' if progress else ''}{note}") from exc
            log.warning("%s: %s failed (%s); %s", label, self.name, type(exc).__name__, note)
            raise
        bar.close()
        return [served(key, i) for i, key in enumerate(keys)]

    def _generate_part(
        self,
        batch: list[list[Message]],
        part: Sequence[int],
        settings: GenerationSettings,
        progress: str | None,
        keep: ReplySink,
    ) -> None:
        """Generate ``batch[i] for i in part``, handing every reply to ``keep`` (indices into
        ``batch``) as the backend delivers it; replies it only returns are handed over at the end."""
        delivered: set[int] = set()

        def sink(pairs: Sequence[tuple[int, Generation]]) -> None:
            delivered.update(j for j, _ in pairs)
            if pairs:
                keep([(part[j], g) for j, g in pairs])

        conversations = [batch[i] for i in part]
        if self.streams:
            fresh = self.backend.generate(conversations, settings, progress=progress, on_reply=sink)
        else:
            fresh = self.backend.generate(conversations, settings, progress=progress)
        if len(fresh) != len(part):
            raise RuntimeError(f"backend {self.name!r} returned {len(fresh)} replies for {len(part)} prompts")
        sink([(j, g) for j, g in enumerate(fresh) if j not in delivered])

    def close(self) -> None:
        """Close the cache file, and the backend when it holds resources (worker processes)."""
        self.store.close()
        close = getattr(self.backend, "close", None)
        if callable(close):
            close()
