"""Prefect 3 flows: thin loops over the plan (:func:`reasoningrec.pipeline.plan`).

Deployments and schedules are in ``prefect.yaml``; docs/operations.md says how to serve them.
Every call goes through :mod:`reasoningrec.orchestration.tasks`, so a flow skips exactly the calls
whose completion records match the disk and runs the rest, in plan order.
"""

from __future__ import annotations

from typing import Any, Literal

from prefect import flow
from prefect.futures import wait

from reasoningrec.orchestration.tasks import TASKS, merge_task, registry_task, report_task, split_task

Through = Literal["data", "synthesis", "training"]


def _plan(dataset: str, params_path: str, overrides: dict[str, Any] | None, **selection: Any):
    from reasoningrec.config import read_params
    from reasoningrec.pipeline import plan

    params = read_params(params_path, overrides=overrides)
    return params, plan(params, dataset, **selection)


@flow(name="pipeline", flow_run_name="pipeline-{dataset}")
def pipeline(
    dataset: str,
    params_path: str = "params.yaml",
    through: Through = "training",
    methods: list[str] | None = None,
    k_shots: list[int] | None = None,
    seeds: list[int] | None = None,
    shards: int | None = None,
    overrides: dict[str, Any] | None = None,
    force: bool = False,
    register: bool = True,
    report: bool = False,
) -> dict:
    """Every call of the dataset's plan up to ``through``, in order; LLM stages fan out over
    ``shards`` (default ``orchestration.shards``). Then the registry audit and, on request, the report."""
    params, calls = _plan(
        dataset, params_path, overrides, methods=methods, k_shots=k_shots, seeds=seeds, through=through
    )
    count = shards or params.orchestration.shards
    results: dict[str, Any] = {}
    for call in calls:
        if call.stage.shard_key and count > 1 and not call.subdir:
            results[call.name] = sharded(params)(call.stage.name, dataset, params_path, count, overrides, force)
        else:
            results[call.name] = task_for(call.stage.kind, params)(
                call.stage.name, dataset, params_path, dict(call.options), call.subdir, overrides, force
            )
    if through == "training" and register:
        results["register"] = registry_task(params_path, dataset)
    if report:
        results["report"] = report_task(params_path)
    return results


@flow(name="ingest-validate", flow_run_name="ingest-validate-{dataset}")
def ingest_validate(dataset: str, params_path: str = "params.yaml", overrides: dict[str, Any] | None = None) -> dict:
    """The plan's data phase: ingest, validate interactions (GX), prepare, validate samples."""
    return pipeline(dataset, params_path, through="data", overrides=overrides, register=False)


@flow(name="synthesize-stage", flow_run_name="{stage}-{dataset}")
def synthesize_stage(
    stage: str,
    dataset: str,
    params_path: str = "params.yaml",
    shards: int = 2,
    overrides: dict[str, Any] | None = None,
    force: bool = False,
) -> dict:
    """One LLM stage over ``shards`` item/user shards, each on its own server of ``llm.base_url``;
    skipped as a whole when the stage's call is up to date."""
    from reasoningrec.completion import check, read_record, require_upstream
    from reasoningrec.orchestration.shards import endpoint_overrides
    from reasoningrec.pipeline import call_for

    params, calls = _plan(dataset, params_path, overrides, methods=[], baselines=False)
    call = call_for(params, dataset, stage)
    if check(params, call).up_to_date and not force:
        return read_record(params, call)["summary"]
    require_upstream(params, call, calls)
    folders = split_task(stage, dataset, params_path, shards, overrides)
    futures = [
        task_for(call.stage.kind, params).submit(
            stage, dataset, params_path, None, None, {**(overrides or {}), **endpoint}, force, folder
        )
        for folder, endpoint in zip(folders, endpoint_overrides(params.llm.base_url, shards), strict=True)
    ]
    wait(futures)
    for future in futures:
        future.result()  # raises the first shard failure (after every shard has finished)
    return merge_task(stage, dataset, params_path, folders, overrides)


def task_for(kind: str, params):
    """The task of a stage kind; LLM tasks retry as ``orchestration`` says (count, backoff)."""
    if kind != "llm":
        return TASKS[kind]
    from prefect.tasks import exponential_backoff

    config = params.orchestration
    return TASKS[kind].with_options(
        retries=config.llm_retries, retry_delay_seconds=exponential_backoff(config.retry_backoff_s)
    )


def sharded(params):
    """:func:`synthesize_stage` on the task runner of ``orchestration`` (threads, processes, Dask, Ray)."""
    from reasoningrec.orchestration.runners import make_task_runner

    return synthesize_stage.with_options(task_runner=make_task_runner(params.orchestration))


@flow(name="register", flow_run_name="register-{dataset}")
def register(dataset: str, params_path: str = "params.yaml", promote_version: int | None = None) -> dict:
    """Report champion/challenger of the dataset's registered model; ``promote_version`` moves champion."""
    return registry_task(params_path, dataset, promote_version)
