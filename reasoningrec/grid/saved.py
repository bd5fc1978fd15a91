"""The second half of a two-phase grid: log, where MLflow is, the runs a grid made with tracking off.

On a GPU box without the tracking store (``--set tracking.tracking_uri=none``, BERTScore
``deferred``) every run keeps in its summary what MLflow needs. Brought back here,
:func:`log_saved` logs each finished job of the grid's plan (:func:`reasoningrec.run_logging.log_saved_run`,
:func:`reasoningrec.baselines.log_saved_baselines`; a deferred BERTScore is computed here) and
re-records its outputs (:func:`reasoningrec.completion.amend_outputs`): logging writes the run id into
the summary file, which would otherwise make the call look stale. Runs logged already are skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from reasoningrec.completion import amend_outputs, outputs_intact, write_metrics
from reasoningrec.grid.jobs import DatasetPlan, Job

if TYPE_CHECKING:
    from reasoningrec.config import Params
    from reasoningrec.grid.run import GridOptions

log = logging.getLogger(__name__)


def log_results(params: Params, options: GridOptions, *, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Log the saved runs of the grid ``options`` describe, then write the report when asked; the
    outcome also goes to ``.grid/logged.json``."""
    from reasoningrec.grid.run import plans_for, run_after, state_dir, write_report
    from reasoningrec.io import write_json

    plans = plans_for(params, options)
    outcome = log_saved(params, plans, say=say)
    for plan in plans:  # logging rewrote the summaries the after-calls read
        try:
            outcome.setdefault("after", {})[plan.dataset] = run_after(params, plan, options, say)
        except Exception as exc:
            log.exception("%s: after-calls failed", plan.dataset)
            outcome["failed"][f"{plan.dataset}/after"] = f"{type(exc).__name__}: {exc}"
    if options.report is not None:
        try:
            outcome["report"] = str(write_report(params, options.report, options.report_bootstrap))
        except Exception as exc:
            log.exception("report failed")
            outcome["report_error"] = f"{type(exc).__name__}: {exc}"
    write_json(state_dir(params) / "logged.json", outcome)
    return outcome


def log_saved(params: Params, plans: Sequence[DatasetPlan], *, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Log every finished, not yet logged job of ``plans``; return what happened to each job."""
    from reasoningrec.errors import ConfigError
    from reasoningrec.tracking import tracking_enabled

    if not tracking_enabled(params):
        raise ConfigError(
            "logging saved runs needs a tracking store: tracking.tracking_uri is none (or REASONINGREC_TRACKING=off)"
        )
    outcome: dict[str, Any] = {"logged": {}, "already": [], "missing": {}, "unregistered": [], "failed": {}}
    for plan in plans:
        for job in plan.jobs:
            verdict = outputs_intact(params, job.call)
            if not verdict.up_to_date:
                outcome["missing"][job.job_id] = verdict.reason
                continue
            try:
                logged = _log_job(params, job)
            except Exception as exc:  # one damaged run must not stop the others
                log.exception("%s: not logged", job.job_id)
                outcome["failed"][job.job_id] = f"{type(exc).__name__}: {exc}"
                continue
            if logged is None:
                outcome["already"].append(job.job_id)
                continue
            outcome["logged"][job.job_id] = logged["run_ids"]
            if logged.get("unregistered"):
                outcome["unregistered"].append(job.job_id)
            say(f"logged {job.job_id}: {', '.join(logged['run_ids'])}")
    if outcome["unregistered"]:
        say(
            f"{len(outcome['unregistered'])} fine-tuned run(s) logged without a model version "
            "(their adapter was not brought back)"
        )
    return outcome


def _log_job(params: Params, job: Job) -> dict[str, Any] | None:
    """Log one job's saved run(s) and re-record its outputs; None when it was logged already."""
    if job.method is None:
        return _log_baselines(params, job)
    from reasoningrec.experiment import ExperimentSummary, run_dir
    from reasoningrec.run_logging import log_saved_run

    folder = run_dir(params, job.dataset, job.method, job.k_shots, job.seed)
    if ExperimentSummary.read(folder / "metrics.json").run_id:
        return None
    summary = log_saved_run(params, folder)
    _amend(params, job, summary.to_json())
    return {"run_ids": [summary.run_id], "unregistered": summary.unregistered}


def _log_baselines(params: Params, job: Job) -> dict[str, Any] | None:
    from reasoningrec.baselines import BaselinesSummary, log_saved_baselines

    path = params.work_dir(job.dataset) / "baselines" / "baselines.json"
    runs = [run for entry in BaselinesSummary.read(path).methods.values() for run in entry.get("seeds", {}).values()]
    if all(run.get("run_id") for run in runs):
        return None
    summary = log_saved_baselines(params, job.dataset)
    _amend(params, job, summary.to_json())
    ids = [run["run_id"] for entry in summary.methods.values() for run in entry["seeds"].values()]
    return {"run_ids": ids}


def _amend(params: Params, job: Job, summary: dict[str, Any]) -> None:
    amend_outputs(params, job.call, summary)
    write_metrics(params, job.call, summary)
