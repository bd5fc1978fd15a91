"""One grid job in a worker process: :func:`reasoningrec.completion.execute` of its call.

The call is skipped when its completion record matches the disk, so a job finished by an earlier
grid call costs nothing. Everything the job prints or logs goes to its own log file; a failure comes
back as a result (``status: failed`` and the error), never as an exception.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reasoningrec.completion import Outcome
    from reasoningrec.grid.jobs import Job


@dataclass(frozen=True)
class WorkerContext:
    """What every job of a grid call shares (picklable: it travels to the spawned workers)."""

    settings: dict[str, Any]  # the validated params, as JSON (parsed again in the worker)
    log_dir: str
    threads: int = 1
    command: str | None = None  # the runs' ``command`` tag
    allow_stale: bool = False  # the validation gates were skipped (--skip-validation)


def init_worker(threads: int) -> None:
    """Per-process setup, before torch is imported: CPU threads split between the workers."""
    for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[key] = str(threads)
    from reasoningrec.logs import disable_telemetry

    disable_telemetry()


def log_path(log_dir: str | Path, job: Job) -> Path:
    return Path(log_dir) / job.dataset / f"{job.call.name}.log"


def run_job(job: Job, context: WorkerContext) -> dict[str, Any]:
    """Execute the job's call in this process; return its result record (never raises)."""
    started = time.time()
    path = log_path(context.log_dir, job)
    path.parent.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"job": job.job_id, "started": started, "log": str(path), "pid": os.getpid()}
    root = logging.getLogger()
    ours = logging.getLogger("reasoningrec")
    saved_handlers, saved_levels = root.handlers[:], (root.level, ours.level)
    with open(path, "a", encoding="utf-8") as sink, contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        handler = logging.StreamHandler(sink)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
        root.handlers[:] = [handler]
        root.setLevel(logging.WARNING)
        ours.setLevel(logging.INFO)
        try:
            _set_threads(context.threads)
            from reasoningrec.completion import execute
            from reasoningrec.config import parse_params

            params = parse_params(context.settings, "grid settings")
            extra = {"command": context.command} if context.command else None
            outcome = execute(params, job.call, allow_stale=context.allow_stale, runner="grid", extra=extra)
            result.update(status="ok", ran=outcome.ran, metrics=headline(outcome))
            if outcome.summary.get("run_id"):
                result["run_id"] = outcome.summary["run_id"]
        except BaseException as exc:  # noqa: BLE001 - a job's failure must not stop the pool
            traceback.print_exc()
            result.update(status="failed", error=f"{type(exc).__name__}: {exc}"[:2000])
        finally:
            handler.flush()
            root.handlers[:] = saved_handlers
            root.setLevel(saved_levels[0])
            ours.setLevel(saved_levels[1])
    result["seconds"] = round(time.time() - started, 1)
    result["imports"] = third_party_modules()
    return result


def headline(outcome: Outcome) -> dict[str, Any]:
    """The figures a person looks at first: an experiment's AUCs, the baselines' mean test AUC."""
    summary = outcome.summary
    if outcome.call.stage.name == "baselines":
        return {m: e.get("test_auc_mean") for m, e in (summary.get("methods") or {}).items()}
    metrics = summary.get("metrics") or {}
    return {k: metrics.get(k) for k in ("valid_auc", "test_auc", "test_bertscore_f1") if k in metrics}


def third_party_modules() -> list[str]:
    """Top-level non-stdlib modules imported in this process (what the machine must have installed)."""
    names = {name.split(".", 1)[0] for name in list(sys.modules)}
    return sorted(
        n
        for n in names
        if n not in sys.stdlib_module_names
        and not n.startswith("_")
        and n not in {"reasoningrec", "tests", "__main__", "__mp_main__"}
    )


def _set_threads(threads: int) -> None:
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(threads)
