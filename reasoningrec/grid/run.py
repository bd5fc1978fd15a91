"""``reasoningrec grid``: dataset x method x K x seed on the pipeline's plan, resumable, sharing one GPU.

For each dataset the grid takes the plan of :func:`reasoningrec.pipeline.plan` and splits it
(:mod:`reasoningrec.grid.jobs`):

1. **Data**: the calls the jobs need (ingest, validation, prepare, texts, records), one dataset after
   another, each through :func:`reasoningrec.completion.execute` in plan order. A dataset whose data
   call fails is reported and its jobs are left out; the other datasets go on.
2. **Jobs**: the experiments and the baselines, most important first, on ``workers`` spawned
   processes (:mod:`reasoningrec.grid.pool`; ``workers=0``: one after another in this process). Each
   job is ``execute`` of its call in a worker (:mod:`reasoningrec.grid.worker`).
3. **After**: the calls that read the runs (``compare``), once every run they read is up to date.
4. **Report** (optional): :func:`reasoningrec.report.run_report` from the tracking store.

Every call is skipped when its completion record matches the disk, so a second grid call runs
nothing, and a call with another ``--set`` runs again exactly the calls whose settings, code or
inputs that changes. Job results, logs and the third-party modules the processes imported go to
``<paths.work_dir>/.grid/`` (``status.json``, ``jobs.jsonl``, ``logs/<dataset>/<call>.log``,
``imports.json``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reasoningrec.completion import check, execute, upstream
from reasoningrec.grid.jobs import DatasetPlan, Job, grid_plans, order_jobs
from reasoningrec.grid.pool import run_pool, threads_per_worker
from reasoningrec.grid.worker import WorkerContext, headline, init_worker, run_job, third_party_modules
from reasoningrec.io import read_json, write_json

if TYPE_CHECKING:
    from reasoningrec.config import Params

log = logging.getLogger(__name__)

STATE_DIR = ".grid"


@dataclass(frozen=True)
class GridOptions:
    """What one grid call covers and how it runs. Empty ``datasets``/``k_shots``/``seeds`` mean
    ``pipeline:``'s; ``methods=None`` means every method of the table, the baselines included."""

    datasets: tuple[str, ...] = ()
    methods: tuple[str, ...] | None = None
    k_shots: tuple[int, ...] = ()
    seeds: tuple[int, ...] = ()
    workers: int = 1  # processes sharing the GPU; 0 = the jobs run one by one in this process
    deadline_s: float = math.inf  # start no job after this many seconds from the start
    hard_deadline_s: float | None = None  # end the jobs still running then
    skip_validation: bool = False  # no Great Expectations on this machine: the gates are not run
    report: Path | None = None  # write the results report here at the end
    report_bootstrap: int = 1000
    command: str | None = None  # the runs' ``command`` tag

    def resolved(self, params: Params) -> GridOptions:
        pipeline = params.pipeline
        return replace(
            self,
            datasets=tuple(self.datasets or pipeline.datasets),
            k_shots=tuple(int(k) for k in (self.k_shots or pipeline.k_shots)),
            seeds=tuple(int(s) for s in (self.seeds or pipeline.seeds)),
        )


def state_dir(params: Params) -> Path:
    """``<paths.work_dir>/.grid``: the grid's status, job logs and module list."""
    return params.paths.work_dir / STATE_DIR


def plans_for(params: Params, options: GridOptions) -> list[DatasetPlan]:
    options = options.resolved(params)
    return grid_plans(
        params,
        options.datasets,
        options.methods,
        options.k_shots,
        options.seeds,
        skip_validation=options.skip_validation,
    )


# --------------------------------------------------------------------------- preview


def preview(params: Params, options: GridOptions) -> list[str]:
    """One line per call of the grid, in the order it would run: up to date, or why it would run
    (a call after one that runs is listed as running after it). Runs nothing."""
    options = options.resolved(params)
    plans = plans_for(params, options)
    stale: dict[tuple[str, str], str] = {}
    lines: list[str] = []

    def visit(call, calls) -> None:
        verdict = check(params, call)
        reason = None if verdict.up_to_date else verdict.reason
        if reason is None:
            after = [u.name for u in upstream(call, calls) if (u.dataset, u.name) in stale]
            reason = f"after {', '.join(after)}" if after else None
        if reason is not None:
            stale[(call.dataset, call.name)] = reason
        lines.append(f"{call.dataset:<12} {call.name:<48} {'runs: ' + reason if reason else 'up to date'}")

    for plan in plans:
        for call in plan.data:
            visit(call, plan.calls)
    by_dataset = {plan.dataset: plan for plan in plans}
    for job in order_jobs([j for p in plans for j in p.jobs], options.k_shots, options.seeds, options.datasets):
        visit(job.call, by_dataset[job.dataset].calls)
    for plan in plans:
        for call in plan.after:
            visit(call, plan.calls)
    return lines


# --------------------------------------------------------------------------- the run


def run_grid(
    params: Params,
    options: GridOptions,
    *,
    synthesis_params: Params | None = None,
    say: Callable[[str], None] = print,
    runner: Callable[..., dict] = run_job,
) -> dict[str, Any]:
    """Run the grid (module docstring); return its status (also in ``.grid/status.json``).
    ``synthesis_params``: the settings the LLM text stages run with (another ``llm.batch_size``,
    which no stage's record depends on). ``runner``: what runs one job (tests replace it)."""
    launched = time.monotonic()
    preloaded = set(third_party_modules())
    options = options.resolved(params)
    plans = plans_for(params, options)
    state = state_dir(params)
    status = _previous_status(state)
    status.update(options=_jsonable(options), datasets={})

    ready = _data_phase(params, plans, options, status, say, synthesis_params)
    _write_status(state, status)
    jobs = order_jobs([j for p in ready for j in p.jobs], options.k_shots, options.seeds, options.datasets)
    pending = _skip_finished(params, jobs, ready, options, status)
    say(f"{len(jobs)} jobs: {len(jobs) - len(pending)} up to date, {len(pending)} to run")
    if params.train.processes != 1 and options.workers > 1:
        say(
            f"train.processes={params.train.processes}: each training job launches itself on the GPUs; with "
            f"{options.workers} workers the jobs share them (--workers 1 gives each training all of them)"
        )
    ran = _job_phase(
        params,
        pending,
        options,
        status,
        state,
        say,
        runner,
        deadline=launched + options.deadline_s,
        hard_deadline=None if options.hard_deadline_s is None else launched + options.hard_deadline_s,
    )
    for plan in ready:
        with _reported(status, plan.dataset, "after_error"):
            status["datasets"][plan.dataset]["calls"].update(run_after(params, plan, options, say))
    if options.report is not None:
        _report_phase(params, options, status)

    write_imports(state / "imports.json", ran.imports | (set(third_party_modules()) - preloaded))
    status["summary"] = {
        "jobs": len(jobs),
        "up_to_date": len(jobs) - len(pending),
        "ran": sum(r.get("status") == "ok" for r in ran.results),
        "failed": sorted(r["job"] for r in ran.results if r.get("status") == "failed"),
        "not_started": ran.not_started,
        "stopped": ran.stopped,
        "datasets_failed": sorted(d for d, entry in status["datasets"].items() if "error" in entry),
        "seconds": round(time.monotonic() - launched, 1),
    }
    _write_status(state, status)
    return status


def _data_phase(
    params: Params,
    plans: Sequence[DatasetPlan],
    options: GridOptions,
    status: dict,
    say: Callable[[str], None],
    synthesis_params: Params | None,
) -> list[DatasetPlan]:
    """Each dataset's data calls in plan order; the plans whose data calls all succeeded."""
    ready = []
    for plan in plans:
        try:
            steps = _run_calls(params, plan, plan.data, options, say, synthesis_params)
        except Exception as exc:  # one broken dataset must not stop the others
            log.exception("%s: data stages failed", plan.dataset)
            status["datasets"][plan.dataset] = {"error": f"{type(exc).__name__}: {exc}"}
            say(f"{plan.dataset}: data stages failed ({type(exc).__name__}: {exc}); its jobs are left out")
            continue
        status["datasets"][plan.dataset] = {"calls": steps}
        ready.append(plan)
    return ready


def _skip_finished(
    params: Params, jobs: Sequence[Job], ready: Sequence[DatasetPlan], options: GridOptions, status: dict
) -> list[Job]:
    """The jobs that are not up to date; the others are executed here (a skip that rewrites their
    metrics file) and recorded as done."""
    calls_of = {plan.dataset: plan.calls for plan in ready}
    pending = []
    for job in jobs:
        if not check(params, job.call).up_to_date:
            pending.append(job)
            continue
        outcome = execute(
            params, job.call, calls=calls_of[job.dataset], allow_stale=options.skip_validation, runner="grid"
        )
        status["jobs"][job.job_id] = {"job": job.job_id, "status": "ok", "ran": False, "metrics": headline(outcome)}
    return pending


@dataclass
class _Ran:
    results: list[dict] = field(default_factory=list)
    imports: set[str] = field(default_factory=set)
    not_started: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)


def _job_phase(
    params: Params,
    pending: Sequence[Job],
    options: GridOptions,
    status: dict,
    state: Path,
    say: Callable[[str], None],
    runner: Callable[..., dict],
    *,
    deadline: float,
    hard_deadline: float | None,
) -> _Ran:
    """The pending jobs on the pool (or one by one here with ``workers=0``), each result recorded as
    it arrives."""
    ran = _Ran(not_started=[job.job_id for job in pending])

    def on_result(result: dict) -> None:
        ran.imports.update(result.pop("imports", []))
        ran.results.append(result)
        status["jobs"][result["job"]] = result
        with open(state / "jobs.jsonl", "a", encoding="utf-8") as handle:
            handle.write(json.dumps(result, default=str) + "\n")
        _write_status(state, status)
        say(
            f"{result['status']:<6} {result['job']} in {result.get('seconds', '?')} s "
            f"{result.get('metrics') or result.get('error', '')}"
        )

    if not pending or time.monotonic() >= deadline:
        return ran
    from reasoningrec.tracking import tracking_enabled

    _warm_up(params, tracking_enabled(params), needs_model=any(job.method for job in pending))
    context = WorkerContext(
        settings=params.model_dump(mode="json", by_alias=True),
        log_dir=str(state / "logs"),
        threads=threads_per_worker(max(1, options.workers)),
        command=options.command,
        allow_stale=options.skip_validation,
    )
    if options.workers == 0:
        ran.not_started = []
        for job in pending:
            if time.monotonic() >= deadline:
                ran.not_started.append(job.job_id)
            else:
                on_result(runner(job, context))
        return ran
    outcome = run_pool(
        pending,
        runner,
        context,
        workers=options.workers,
        deadline=deadline,
        hard_deadline=hard_deadline,
        on_result=on_result,
        initializer=init_worker,
        initargs=(context.threads,),
    )
    ran.not_started, ran.stopped = outcome.not_started, outcome.stopped
    status["workers_at_end"] = outcome.workers_at_end
    return ran


def _report_phase(params: Params, options: GridOptions, status: dict) -> None:
    from reasoningrec.tracking import tracking_enabled

    status.pop("report_error", None)
    if not tracking_enabled(params):
        status["report"] = "deferred: tracking is off; run `reasoningrec grid --log-results --report` where MLflow is"
        return
    try:
        status["report"] = str(write_report(params, options.report, options.report_bootstrap))
    except Exception as exc:
        log.exception("report failed")
        status["report_error"] = f"{type(exc).__name__}: {exc}"


def exit_code(status: dict[str, Any]) -> int:
    """0 when every job, dataset and the report succeeded, else 1."""
    summary = status.get("summary", {})
    errors = summary.get("failed") or summary.get("datasets_failed") or "report_error" in status
    errors = errors or any("after_error" in entry for entry in status.get("datasets", {}).values())
    return 1 if errors else 0


def run_after(params: Params, plan: DatasetPlan, options: GridOptions, say: Callable[[str], None]) -> dict[str, str]:
    """Execute the dataset's after-calls whose every input run is up to date; what happened to each."""
    steps: dict[str, str] = {}
    for call in plan.after:
        needed = [u for u in upstream(call, plan.calls) if not (options.skip_validation and u.stage.gate)]
        if all(check(params, u).up_to_date for u in needed):
            steps.update(_run_calls(params, plan, [call], options, say))
        else:
            steps[call.name] = "not run: some runs it reads are missing"
    return steps


def write_report(params: Params, out: Path, n_bootstrap: int) -> Path:
    from reasoningrec.report import run_report

    return run_report(params, out=out, n_bootstrap=n_bootstrap)


# --------------------------------------------------------------------------- helpers


def _run_calls(
    params: Params,
    plan: DatasetPlan,
    calls: Iterable,
    options: GridOptions,
    say: Callable[[str], None],
    synthesis_params: Params | None = None,
) -> dict[str, str]:
    """Execute calls of a dataset in order; what happened to each (raises on the first failure)."""
    steps: dict[str, str] = {}
    for call in calls:
        use = synthesis_params if synthesis_params is not None and call.stage.kind == "llm" else params
        outcome = execute(use, call, calls=plan.calls, allow_stale=options.skip_validation, runner="grid")
        steps[call.name] = f"ran in {outcome.seconds:.1f} s" if outcome.ran else "up to date"
        say(f"{plan.dataset} {call.name}: {steps[call.name]}")
    return steps


@contextlib.contextmanager
def _reported(status: dict, dataset: str, key: str):
    try:
        yield
    except Exception as exc:
        log.exception("%s: %s", dataset, key)
        status["datasets"][dataset][key] = f"{type(exc).__name__}: {exc}"


def _warm_up(params: Params, tracked: bool, needs_model: bool) -> None:
    """Convert the embedded model (when an experiment needs it: the baselines need none) and create
    the MLflow schema and experiment once, here, before the workers race for them."""
    if needs_model:
        from reasoningrec.models import resolve_model

        resolve_model(params.train.base_model)
    if tracked:
        from reasoningrec import tracking

        tracking.experiment_id(tracking.get_client(params), params)


def _previous_status(state: Path) -> dict[str, Any]:
    """The job results of earlier grid calls into this work folder (kept, then overwritten per job)."""
    status: dict[str, Any] = {"jobs": {}}
    with contextlib.suppress(OSError, ValueError, AttributeError):
        status["jobs"] = dict(read_json(state / "status.json").get("jobs") or {})
    return status


def _write_status(state: Path, status: dict[str, Any]) -> None:
    write_json(state / "status.json", status)


def _jsonable(options: GridOptions) -> dict[str, Any]:
    values = {k: (str(v) if isinstance(v, Path) else v) for k, v in options.__dict__.items()}
    return {k: (None if isinstance(v, float) and math.isinf(v) else v) for k, v in values.items()}


def write_imports(path: Path, modules: Iterable[str]) -> None:
    """Third-party modules imported by any process of this grid call or an earlier one into the same
    work folder, with their installed distributions and versions."""
    from importlib.metadata import packages_distributions, version

    earlier: set[str] = set()
    with contextlib.suppress(OSError, ValueError, TypeError):
        earlier = set(read_json(path))
    distributions = packages_distributions()
    rows = {}
    for module in sorted(set(modules) | earlier):
        rows[module] = {name: _version(version, name) for name in distributions.get(module, [])}
    write_json(path, rows)


def _version(version: Callable[[str], str], name: str) -> str | None:
    try:
        return version(name)
    except Exception:
        return None
