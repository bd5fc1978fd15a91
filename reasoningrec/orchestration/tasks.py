"""The Prefect tasks every flow is built from: one task runs one plan call through the completion rule.

Tasks pass a settings path, stage names and options, never frames. Nothing is cached by Prefect:
whether a call is up to date is decided by its completion record (:mod:`reasoningrec.completion`),
the same rule the CLI, DVC and the grid follow, so a flow never returns a result that does not
belong to the files on disk.
"""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from reasoningrec.orchestration.retry import retry_condition


def _params(params_path: str, overrides: dict[str, Any] | None):
    from reasoningrec.config import read_params

    return read_params(params_path, overrides=overrides)  # fresh from disk: a re-run sees edits


@task(name="stage", task_run_name="{stage}-{dataset}", cache_policy=NO_CACHE, retries=0)
def stage_task(
    stage: str,
    dataset: str,
    params_path: str,
    options: dict[str, Any] | None = None,
    subdir: str | None = None,
    overrides: dict[str, Any] | None = None,
    force: bool = False,
    shard: str | None = None,
) -> dict:
    """Execute one call of the plan (skipped when its completion record is up to date); its summary.

    ``shard``: the folder of one shard of a sharded stage (its inputs were split into it).
    """
    from reasoningrec.completion import execute
    from reasoningrec.pipeline import call_for, shard_call

    params = _params(params_path, overrides)
    call = call_for(params, dataset, stage, subdir=subdir, **(options or {}))
    if shard is not None:
        call = shard_call(call, shard)
    return execute(params, call, force=force, runner="prefect", allow_stale=shard is not None).summary


# LLM calls fail transiently (busy or restarting servers): back off 10 s, 20 s, 40 s (+-20 %).
llm_task = stage_task.with_options(
    name="llm-stage",
    retries=3,
    retry_delay_seconds=exponential_backoff(backoff_factor=10),
    retry_jitter_factor=0.2,
    retry_condition_fn=retry_condition,
    tags={"llm"},
)

# GPU work: one retry for a transient fault, never after out-of-memory (it would fail the same way).
# The "gpu" tag lets `prefect concurrency-limit create gpu 1` keep one GPU job at a time.
gpu_task = stage_task.with_options(
    name="gpu-stage",
    retries=1,
    retry_delay_seconds=30,
    retry_condition_fn=retry_condition,
    tags={"gpu"},
)

TASKS = {"data": stage_task, "llm": llm_task, "gpu": gpu_task}


@task(name="split-shards", task_run_name="split-{stage}-{shards}", cache_policy=NO_CACHE)
def split_task(
    stage: str, dataset: str, params_path: str, shards: int, overrides: dict[str, Any] | None = None
) -> list[str]:
    """Write the shard folders of one stage's inputs; returns them relative to the work dir."""
    from reasoningrec.orchestration.shards import split_inputs
    from reasoningrec.pipeline import call_for

    params = _params(params_path, overrides)
    call = call_for(params, dataset, stage)
    work = params.work_dir(dataset)
    return [p.relative_to(work).as_posix() for p in split_inputs(work, call.stage, shards)]


@task(name="merge-shards", task_run_name="merge-{stage}", cache_policy=NO_CACHE)
def merge_task(
    stage: str, dataset: str, params_path: str, shard_dirs: list[str], overrides: dict[str, Any] | None = None
) -> dict:
    """Concatenate the shards' outputs into the work dir and complete the stage's call."""
    from reasoningrec.completion import execute
    from reasoningrec.orchestration.shards import merge_outputs
    from reasoningrec.pipeline import call_for

    params = _params(params_path, overrides)
    call = call_for(params, dataset, stage)
    work = params.work_dir(dataset)
    merge = lambda: merge_outputs(work, call.stage, [work / d for d in shard_dirs])  # noqa: E731
    return execute(params, call, force=True, runner="prefect", action=merge).summary


@task(name="registry", task_run_name="registry-{dataset}", cache_policy=NO_CACHE)
def registry_task(params_path: str, dataset: str, promote_version: int | None = None) -> dict:
    """Audit (and optionally move) the dataset's ``champion`` alias."""
    from reasoningrec.orchestration.registry import registry_state

    return registry_state(_params(params_path, None), dataset, promote_version)


@task(name="report", cache_policy=NO_CACHE)
def report_task(params_path: str, out: str = "docs/results.md") -> dict:
    """Rewrite the results report from the tracked runs (MLflow is its input)."""
    from pathlib import Path

    from reasoningrec.report import run_report

    return {"report": str(run_report(_params(params_path, None), out=Path(out)))}
