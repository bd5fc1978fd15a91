"""Local generation over several devices of one host: one worker process per GPU, no server.

:class:`MultiDeviceBackend` is a :class:`~reasoningrec.llm.base.ChatBackend` that splits every
batch over its workers (longest conversations dealt round-robin, :mod:`reasoningrec.sharding`), each
a spawned process that sees one GPU (``CUDA_VISIBLE_DEVICES``) and runs the ordinary local backend
(:class:`~reasoningrec.llm.hf.HFBackend`) on its share. Replies travel back on each worker's own pipe
as every micro-batch finishes and go to the caller's ``on_reply`` sink at once, in this process: behind
the response cache (:class:`~reasoningrec.llm.cache.CachedBackend`, where ``make_backend`` puts it)
each reply is committed as it arrives, whichever worker made it. The backend's name and model id are
the local backend's, so the cache keys are the single-process ones: a run on one GPU and a run on
eight share their replies, and greedy replies are the same tokens (each prompt is decoded on its own
row of a left-padded batch, as on one device; the order of the input is restored).

A worker that dies (killed, out of memory) fails the call after the other workers have finished
their shares and delivered every reply; the error names the worker. The next call starts a fresh
worker, so a rerun through the cache sends only the prompts without a reply. Workers start on the
first call (each loads the model on its device, all at once) and end with :meth:`close`, when the
backend is garbage-collected, or when this process exits (a worker whose pipe closes ends itself).

``llm.devices`` chooses the devices (:func:`resolve_devices`): ``1`` (this process), ``auto`` (every
visible GPU), ``N`` (the first N GPUs; without a GPU, N CPU workers, which prove the path), or a
list of GPU indices.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import traceback
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import Any

from reasoningrec.errors import ConfigError
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
from reasoningrec.sharding import shard_positions

log = logging.getLogger(__name__)

CHUNK_BATCHES = 4  # micro-batches per worker in one call: fewer calls, each worker busy longer
STOP_TIMEOUT_S = 10.0


# ---------------------------------------------------------------- pure helpers


def resolve_devices(setting: int | str | Sequence[int], gpu_count: int) -> list[str]:
    """The devices of ``llm.devices`` on a host with ``gpu_count`` visible GPUs: one entry = this
    process, several = one worker each (``cuda:i`` = the i-th visible GPU, ``cpu`` = a CPU worker)."""
    if setting == "auto":
        return [f"cuda:{i}" for i in range(gpu_count)] or ["cpu"]
    if isinstance(setting, int):
        if setting < 1:
            raise ConfigError(f"llm.devices must be >= 1, auto or a list of GPU indices, got {setting}")
        if gpu_count == 0:
            return ["cpu"] * setting
        if setting > gpu_count:
            raise ConfigError(
                f"llm.devices={setting} but only {gpu_count} GPU(s) are visible "
                "(CUDA_VISIBLE_DEVICES); use auto or at most that many"
            )
        return [f"cuda:{i}" for i in range(setting)]
    indices = [int(i) for i in setting]
    if not indices or len(set(indices)) != len(indices):
        raise ConfigError(f"llm.devices={list(setting)}: expected distinct GPU indices")
    bad = [i for i in indices if not 0 <= i < gpu_count]
    if bad:
        raise ConfigError(
            f"llm.devices={indices}: GPU(s) {bad} are not among the {gpu_count} visible "
            f"(indices 0..{gpu_count - 1} of CUDA_VISIBLE_DEVICES)"
        )
    return [f"cuda:{i}" for i in indices]


def worker_placement(device: str, parent_env: Mapping[str, str]) -> tuple[dict[str, str], str]:
    """(environment updates, device name inside the worker) for a worker on ``device``: a GPU
    worker sees only its GPU (``CUDA_VISIBLE_DEVICES``, mapped through the parent's own list) and
    calls it ``cuda``."""
    if not device.startswith("cuda"):
        return {"CUDA_VISIBLE_DEVICES": ""} if device == "cpu" else {}, device
    index = int(device.partition(":")[2] or 0)
    visible = [v.strip() for v in parent_env.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    if "CUDA_VISIBLE_DEVICES" in parent_env and not visible:
        raise ConfigError(f"{device}: CUDA_VISIBLE_DEVICES is empty, no GPU is visible")
    if visible and index >= len(visible):
        raise ConfigError(f"{device}: CUDA_VISIBLE_DEVICES={parent_env['CUDA_VISIBLE_DEVICES']} has no GPU {index}")
    return {"CUDA_VISIBLE_DEVICES": visible[index] if visible else str(index)}, "cuda"


def conversation_length(conversation: Sequence[Message]) -> int:
    """Characters of a conversation: what sharding balances (prompt length sets the work)."""
    return sum(len(m["content"]) for m in conversation)


def local_backend(device: str | None, *, kind: str, model: str | None = None, **kwargs) -> ChatBackend:
    """The in-process backend of ``llm.backend`` ``kind``: ``hf`` (:class:`HFBackend` of ``model``)
    or ``embedded``, on ``device`` (None: CUDA when present). What each worker runs."""
    from reasoningrec.llm.hf import EmbeddedBackend, HFBackend

    if kind == "embedded":
        return EmbeddedBackend(device=device, **kwargs)
    if model is None:
        raise ValueError("the hf backend needs a model")
    return HFBackend(model, device=device, **kwargs)


# ---------------------------------------------------------------- the worker process


def _worker_main(factory: Callable[[str], ChatBackend], device: str, conn, threads: int) -> None:
    """A worker: place itself, build and load its backend, then serve ``generate`` requests until
    told to stop or until the parent's end of the pipe closes."""
    env, local_device = worker_placement(device, os.environ)
    if local_device == "cpu":  # the host's cores shared between the CPU workers
        env = {**env, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    os.environ.update(env)  # before torch starts its thread pool and CUDA: both read these then
    try:
        backend = factory(local_device)
        load = getattr(backend, "load", None)
        if load is not None:
            load()
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises it
        _send(conn, ("failed", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))
        return
    if not _send(conn, ("ready", os.getpid())):
        return
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return  # the parent is gone
        if message[0] == "stop":
            return
        _, request, conversations, settings = message

        def sink(pairs, request=request) -> None:
            if not _send(conn, ("reply", request, list(pairs))):
                raise BrokenPipeError("the parent process is gone")

        try:
            backend.generate(conversations, settings, on_reply=sink)
        except BaseException as exc:  # noqa: BLE001 - the parent decides what a failure means
            if not _send(conn, ("error", request, f"{type(exc).__name__}: {exc}")):
                return
            continue
        if not _send(conn, ("done", request)):
            return


def _send(conn, message) -> bool:
    try:
        conn.send(message)
    except (BrokenPipeError, EOFError, OSError):
        return False
    return True


@dataclass
class _Worker:
    device: str
    process: Any
    conn: Any
    pid: int | None = None


def _stop(workers: list[_Worker | None]) -> None:
    """End the workers (stop message, then terminate the ones that do not leave)."""
    for worker in workers:
        if worker is not None:
            _send(worker.conn, ("stop",))
    for i, worker in enumerate(workers):
        if worker is None:
            continue
        worker.process.join(STOP_TIMEOUT_S)
        if worker.process.is_alive():
            worker.process.terminate()
            worker.process.join(STOP_TIMEOUT_S)
        worker.conn.close()
        workers[i] = None


# ---------------------------------------------------------------- the backend


class MultiDeviceBackend:
    """A chat backend that shards every batch over one worker process per device.

    Args:
        factory: picklable ``device -> backend`` run in each worker (``functools.partial`` of a
            module-level function, e.g. :func:`local_backend`); ``device`` is ``cuda`` (the worker's
            one visible GPU) or ``cpu``.
        devices: one entry per worker (:func:`resolve_devices`).
        name, model_id: those of the backends the factory builds (the cache keys use them).
        batch_size: the workers' micro-batch (prompts per forward pass on one device).
    """

    def __init__(
        self,
        factory: Callable[[str], ChatBackend],
        devices: Sequence[str],
        *,
        name: str,
        model_id: str,
        batch_size: int = 8,
    ):
        if len(devices) < 1:
            raise ValueError("MultiDeviceBackend needs at least one device")
        self.factory = factory
        self.devices = list(devices)
        self.name, self.model_id = name, model_id
        self.batch_size = max(1, batch_size)
        self.parallelism = len(self.devices)
        self.chunk_size = self.batch_size * self.parallelism * CHUNK_BATCHES
        self._workers: list[_Worker | None] = [None] * len(self.devices)
        self._request = 0
        self._finalizer = weakref.finalize(self, _stop, self._workers)

    def __repr__(self) -> str:
        return f"MultiDeviceBackend(model_id={self.model_id!r}, devices={self.devices}, batch_size={self.batch_size})"

    def worker_pids(self) -> list[int | None]:
        """Process ids of the running workers (None where none runs)."""
        return [w.pid if w is not None else None for w in self._workers]

    def close(self) -> None:
        """End every worker (a later call starts them again)."""
        _stop(self._workers)

    # ------------------------------------------------------------ workers

    def _start(self) -> None:
        """Start the missing or dead workers and wait until each has loaded its model."""
        context = multiprocessing.get_context("spawn")  # never fork a process that may hold CUDA state
        threads = max(1, (os.cpu_count() or 1) // len(self.devices))
        starting = []
        for i, device in enumerate(self.devices):
            worker = self._workers[i]
            if worker is not None and worker.process.is_alive():
                continue
            if worker is not None:
                worker.conn.close()
            parent_end, child_end = context.Pipe()
            process = context.Process(
                target=_worker_main,
                args=(self.factory, device, child_end, threads),
                name=f"reasoningrec-llm-{i}",
                daemon=True,
            )
            process.start()
            child_end.close()
            self._workers[i] = _Worker(device, process, parent_end)
            starting.append(i)
        if starting:
            log.info(
                "starting %d generation worker(s) on %s", len(starting), ", ".join(self.devices[i] for i in starting)
            )
        problems = []
        for i in starting:
            worker = self._workers[i]
            assert worker is not None
            message = self._receive(worker)
            if message is not None and message[0] == "ready":
                worker.pid = message[1]
                continue
            detail = message[1] if message is not None else f"exit code {worker.process.exitcode}"
            problems.append(f"worker {i} on {worker.device} did not start: {detail}")
        if problems:
            self.close()
            raise LLMBackendError("; ".join(problems))

    @staticmethod
    def _receive(worker: _Worker):
        """The worker's next message, or None when it died first."""
        while True:
            wait([worker.conn, worker.process.sentinel])
            if worker.conn.poll():
                try:
                    return worker.conn.recv()
                except (EOFError, OSError, ValueError):  # a message cut off by the death
                    return None
            if not worker.process.is_alive():
                return None

    # ------------------------------------------------------------ generation

    def generate(
        self,
        batch: list[list[Message]],
        settings: GenerationSettings,
        progress: str | None = None,
        on_reply: ReplySink | None = None,
    ) -> list[Generation]:
        """Replies in input order; each worker's micro-batches reach ``on_reply`` as they finish."""
        check_batch(batch)
        if not batch:
            return []
        self._start()
        self._request += 1
        request = self._request
        lengths = [conversation_length(c) for c in batch]
        shares = {i: shard_positions(lengths, len(self.devices), i) for i in range(len(self.devices))}
        shares = {i: share for i, share in shares.items() if share}
        for i, share in shares.items():
            worker = self._workers[i]
            assert worker is not None
            _send(worker.conn, ("generate", request, [batch[j] for j in share], settings))  # a dead one shows below
        results: list[Generation | None] = [None] * len(batch)
        failures: list[str] = []
        shown = progress_bar(len(batch), progress, "replies")  # silent inside the cache's display
        try:
            self._collect(request, shares, results, failures, on_reply, shown)
        finally:
            shown.close(failed=bool(failures))
        if failures:
            delivered = sum(r is not None for r in results)
            raise LLMBackendError(
                f"{'; '.join(failures)}; {delivered} of {len(batch)} replies were made "
                "(the others are sent again by the next call)"
            )
        return [g for g in results if g is not None]

    def _collect(
        self,
        request: int,
        shares: dict[int, list[int]],
        results: list[Generation | None],
        failures: list[str],
        on_reply: ReplySink | None,
        shown,
    ) -> None:
        """Wait for every worker's share of ``request``; replies fill ``results``, failures ``failures``."""
        pending = dict(shares)
        made = 0
        while pending:
            by_handle = {}
            for i in pending:
                worker = self._workers[i]
                assert worker is not None
                by_handle[worker.conn] = i
                by_handle[worker.process.sentinel] = i
            for handle in wait(list(by_handle)):
                i = by_handle[handle]
                if i not in pending:
                    continue
                worker = self._workers[i]
                assert worker is not None
                verdict = self._drain(i, worker, request, pending[i], results, on_reply)
                if verdict is None:
                    continue
                pending.pop(i)
                if verdict != "done":
                    failures.append(verdict)
            now = sum(r is not None for r in results)
            shown.update(now - made)
            made = now

    def _drain(
        self,
        i: int,
        worker: _Worker,
        request: int,
        share: list[int],
        results: list[Generation | None],
        on_reply: ReplySink | None,
    ) -> str | None:
        """Handle what worker ``i`` has sent: None while its share is in progress, ``done``, or
        what went wrong."""
        while worker.conn.poll():
            try:
                message = worker.conn.recv()
            except (EOFError, OSError, ValueError):
                break  # cut off by its death: the sentinel says so below
            kind, ident = message[0], message[1]
            if ident != request:
                continue  # a reply to a previous request that ended early (its sink raised)
            if kind == "reply":
                pairs = [(share[local], generation) for local, generation in message[2]]
                for position, generation in pairs:
                    results[position] = generation
                if on_reply is not None and pairs:
                    on_reply(pairs)
            elif kind == "done":
                return "done"
            elif kind == "error":
                return f"worker {i} on {worker.device} failed: {message[2]}"
        if worker.process.is_alive():
            return None
        code = worker.process.exitcode
        worker.conn.close()
        self._workers[i] = None
        return f"worker {i} on {worker.device} (pid {worker.pid}) died (exit code {code})"
