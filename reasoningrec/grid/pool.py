"""The worker pool: jobs in order on N spawned processes that share one GPU, aware of its memory.

Rules (:func:`run_pool`):

- Jobs start in the given order, at most ``workers`` at a time; none starts after ``deadline``.
- A job that fails is recorded and the others go on. A worker process that dies (killed for
  memory, a segfault) fails its job and every job in flight with it; the pool is restarted for
  the rest.
- A job that fails because the GPU ran out of memory (:func:`out_of_memory`) goes back to the end
  of the queue once, and from then on one fewer job runs at a time (the others were holding the
  memory). A second out-of-memory failure of the same job is reported like any failure.
- At ``hard_deadline`` the jobs still running are ended (their stage wrote no completion record,
  so the next call runs them again; a training resumes from its checkpoints).
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

Result = dict[str, Any]


@dataclass
class PoolOutcome:
    results: list[Result] = field(default_factory=list)
    not_started: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)  # running at the hard deadline, ended
    workers_at_end: int = 0


def out_of_memory(result: Result) -> bool:
    """Whether a failed job's error is the GPU running out of memory (worth a retry with fewer jobs)."""
    error = str(result.get("error") or "")
    return result.get("status") == "failed" and ("OutOfMemoryError" in error or "CUDA out of memory" in error)


def threads_per_worker(workers: int) -> int:
    """CPU threads each worker may use: the machine's cores split between the workers."""
    return max(1, (os.cpu_count() or 1) // max(1, workers))


def run_pool(
    jobs: Sequence[Any],
    runner: Callable[..., Result],
    context: Any,
    *,
    workers: int,
    deadline: float,
    hard_deadline: float | None = None,
    on_result: Callable[[Result], None] = lambda result: None,
    initializer: Callable[..., None] | None = None,
    initargs: tuple = (),
) -> PoolOutcome:
    """Run ``runner(job, context)`` for each job (each has a ``job_id``) on ``workers`` spawned
    processes by the rules of the module docstring. ``deadline``/``hard_deadline`` are
    ``time.monotonic()`` values. ``runner`` must return a result dict (``job``, ``status``, ...)
    and never raise; ``on_result`` sees each final result as it arrives."""
    if workers < 1:
        raise ValueError("the pool needs at least one worker")
    queue = list(jobs)
    outcome = PoolOutcome()
    spawn = multiprocessing.get_context("spawn")  # no CUDA state is ever forked

    def new_pool() -> cf.ProcessPoolExecutor:
        return cf.ProcessPoolExecutor(max_workers=workers, mp_context=spawn, initializer=initializer, initargs=initargs)

    def report(result: Result) -> None:
        outcome.results.append(result)
        on_result(result)

    pool = new_pool()
    running: dict[cf.Future, Any] = {}
    limit, retried = workers, set()
    try:
        while queue or running:
            while queue and len(running) < limit and time.monotonic() < deadline:
                job = queue.pop(0)
                log.info("start %s", job.job_id)
                running[pool.submit(runner, job, context)] = job
            if not running:
                break  # past the deadline with nothing in flight
            timeout = None if hard_deadline is None else max(0.0, hard_deadline - time.monotonic())
            finished, _ = cf.wait(running, timeout=timeout, return_when=cf.FIRST_COMPLETED)
            broken = False
            for future in finished:
                job = running.pop(future)
                try:
                    result = future.result()
                except cf.process.BrokenProcessPool as exc:
                    broken = True
                    result = {"job": job.job_id, "status": "failed", "error": f"worker process died: {exc}"}
                except Exception as exc:  # a runner that raised after all (or could not be pickled)
                    result = {"job": job.job_id, "status": "failed", "error": f"{type(exc).__name__}: {exc}"}
                if out_of_memory(result) and job.job_id not in retried:
                    retried.add(job.job_id)
                    limit = max(1, limit - 1)
                    queue.append(job)
                    log.warning("%s ran out of GPU memory: queued again, now %d job(s) at a time", job.job_id, limit)
                    continue
                report(result)
            if broken:
                for job in list(running.values()):  # every job in flight died with the pool
                    report({"job": job.job_id, "status": "failed", "error": "worker pool broke while it ran"})
                running.clear()
                pool.shutdown(wait=False, cancel_futures=True)
                pool = new_pool()
            if hard_deadline is not None and running and time.monotonic() >= hard_deadline:
                outcome.stopped = [job.job_id for job in running.values()]
                log.warning("hard deadline: ending %d running job(s): %s", len(running), ", ".join(outcome.stopped))
                _terminate(pool)
                running.clear()
                break
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    outcome.not_started = [job.job_id for job in queue]
    outcome.workers_at_end = limit
    return outcome


def _terminate(pool: cf.ProcessPoolExecutor) -> None:
    # ProcessPoolExecutor has no public way to end running tasks; its worker processes are reachable
    # only through this private mapping.
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.terminate()
    pool.shutdown(wait=False, cancel_futures=True)
