"""The worker pool: out-of-memory retry with one fewer worker, failure isolation, deadlines.

The runners here stand in for :func:`reasoningrec.grid.worker.run_job` (same signature); each try
runs in a fresh spawned process, so their state lives in marker files.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from grid_helpers import paper_params

from reasoningrec.grid.jobs import grid_plans
from reasoningrec.grid.pool import out_of_memory, run_pool

OOM = "OutOfMemoryError: CUDA out of memory. Tried to allocate 14.00 MiB."


@pytest.fixture(scope="module")
def jobs():
    """Four real jobs: tallrec at K = 64 with seeds 0..3."""
    (plan,) = grid_plans(paper_params(), ["beauty"], ["tallrec"], [64], [0, 1, 2, 3])
    return list(plan.jobs)


def _first_try(folder: str, job) -> bool:
    marker = Path(folder) / f"{job.job_id.replace('/', '_')}.tried"
    first = not marker.exists()
    marker.write_text(str(os.getpid()))
    return first


def oom_runner(job, folder):
    """Seed 0 runs out of GPU memory on its first try, seed 1 on every try; the others succeed."""
    first = _first_try(folder, job)
    if job.seed == 1 or (job.seed == 0 and first):
        return {"job": job.job_id, "status": "failed", "error": OOM}
    return {"job": job.job_id, "status": "ok", "pid": os.getpid()}


def mixed_runner(job, folder):
    """Seed 0 fails, seed 1 raises, seed 2 kills its worker process, seed 3 succeeds."""
    if job.seed == 0:
        return {"job": job.job_id, "status": "failed", "error": "ValueError: bad records"}
    if job.seed == 1:
        raise RuntimeError("a runner that raised")
    if job.seed == 2:
        time.sleep(0.5)  # seed 3 is in flight beside it when the process dies
        os._exit(9)
    return {"job": job.job_id, "status": "ok"}


def slow_runner(job, folder):
    time.sleep(60)
    return {"job": job.job_id, "status": "ok"}


def test_a_job_out_of_gpu_memory_is_retried_once_with_one_fewer_worker(jobs, tmp_path):
    seen = []
    outcome = run_pool(
        jobs, oom_runner, str(tmp_path), workers=2, deadline=time.monotonic() + 300, on_result=seen.append
    )
    by_job = {r["job"]: r for r in outcome.results}
    assert set(by_job) == {j.job_id for j in jobs} and len(outcome.results) == len(seen) == 4
    assert by_job["beauty/experiment-tallrec-k64-s0"]["status"] == "ok"  # the retry succeeded
    assert out_of_memory(by_job["beauty/experiment-tallrec-k64-s1"])  # failed twice: reported, not retried again
    assert outcome.workers_at_end == 1  # two out-of-memory failures, but never fewer than one worker
    assert not out_of_memory({"status": "failed", "error": "ValueError: bad"})
    assert not out_of_memory({"status": "ok", "error": OOM})


def test_failures_are_recorded_and_the_other_jobs_go_on(jobs, tmp_path):
    outcome = run_pool(jobs, mixed_runner, str(tmp_path), workers=2, deadline=time.monotonic() + 300)
    by_job = {r["job"]: r for r in outcome.results}
    assert by_job["beauty/experiment-tallrec-k64-s0"]["error"] == "ValueError: bad records"
    assert by_job["beauty/experiment-tallrec-k64-s1"]["error"] == "RuntimeError: a runner that raised"
    assert "worker process died" in by_job["beauty/experiment-tallrec-k64-s2"]["error"]
    # seed 3 either finished before the process died or died with the pool; never lost
    assert by_job["beauty/experiment-tallrec-k64-s3"]["status"] in ("ok", "failed")
    assert len(outcome.results) == 4 and outcome.not_started == []


def test_pool_starts_nothing_after_the_deadline_and_ends_jobs_at_the_hard_deadline(jobs, tmp_path):
    outcome = run_pool(jobs, slow_runner, str(tmp_path), workers=2, deadline=time.monotonic() - 1)
    assert outcome.results == [] and outcome.not_started == [j.job_id for j in jobs]
    started = time.monotonic()
    outcome = run_pool(jobs, slow_runner, str(tmp_path), workers=2, deadline=started + 300, hard_deadline=started + 3)
    assert time.monotonic() - started < 30
    assert outcome.stopped == [j.job_id for j in jobs[:2]] and outcome.results == []
    assert outcome.not_started == [j.job_id for j in jobs[2:]]
