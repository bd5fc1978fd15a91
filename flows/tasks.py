"""The Prefect tasks every flow is built from. Tasks pass file paths and settings paths, never frames.

Each stage task is cached on the content of its input files, its settings section and its code
(``reasoningrec.orchestration.caching``), so re-running a flow skips finished work.
"""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.tasks import exponential_backoff

from reasoningrec.orchestration import shards as _shards
from reasoningrec.orchestration.caching import outputs_present, stage_cache_key
from reasoningrec.orchestration.retry import retry_condition
from reasoningrec.orchestration.stages import run_stage, stage_spec


@task(
    name="stage",
    task_run_name="{stage}-{dataset}",
    cache_key_fn=stage_cache_key,
    persist_result=True,
    retries=0,  # data stages are deterministic: a failure repeats
)
def data_stage(
    stage: str,
    params_path: str,
    dataset: str,
    out_dir: str | None = None,
    options: dict[str, Any] | None = None,
    overrides: dict[str, Any] | None = None,
) -> dict:
    """Run one pipeline stage (by name, see ``reasoningrec.orchestration.stages.STAGES``)."""
    return run_stage(stage, params_path, dataset, out_dir, options, overrides)


# LLM calls fail transiently (busy or restarting servers): back off 10 s, 20 s, 40 s (+-20 %).
llm_stage = data_stage.with_options(
    name="llm-stage",
    retries=3,
    retry_delay_seconds=exponential_backoff(backoff_factor=10),
    retry_jitter_factor=0.2,
    retry_condition_fn=retry_condition,
    tags={"llm"},
)

# GPU work: one retry for a transient fault, never after out-of-memory (it would fail the same way).
# The "gpu" tag lets `prefect concurrency-limit create gpu 1` keep one GPU job at a time.
gpu_stage = data_stage.with_options(
    name="gpu-stage",
    retries=1,
    retry_delay_seconds=30,
    retry_condition_fn=retry_condition,
    tags={"gpu"},
)


def call_stage(
    stage_task: Any,
    stage: str,
    params_path: str,
    dataset: str,
    out_dir: str | None = None,
    options: dict[str, Any] | None = None,
    overrides: dict[str, Any] | None = None,
    *,
    submit: bool = False,
) -> Any:
    """Run (or ``submit``) a stage task, ignoring its cached result when an output has gone missing."""
    if not outputs_present(stage, params_path, dataset, out_dir, overrides, options):
        stage_task = stage_task.with_options(refresh_cache=True)
    run = stage_task.submit if submit else stage_task
    return run(stage, params_path, dataset, out_dir, options, overrides)


@task(name="split-shards", task_run_name="split-{stage}-{shards}")
def split_shards(stage: str, work_dir: str, shards: int) -> list[str]:
    """Write the shard folders of one stage's inputs; returns their paths."""
    from pathlib import Path

    return [str(p) for p in _shards.split_inputs(Path(work_dir), stage_spec(stage), shards)]


@task(name="merge-shards", task_run_name="merge-{stage}")
def merge_shards(stage: str, work_dir: str, shard_dirs: list[str]) -> dict:
    """Concatenate the shards' outputs into the work dir and write the merged summary."""
    from pathlib import Path

    return _shards.merge_outputs(Path(work_dir), stage_spec(stage), [Path(p) for p in shard_dirs])


@task(name="registry", task_run_name="registry-{dataset}")
def registry_task(params_path: str, dataset: str, promote_version: int | None = None) -> dict:
    """Audit (and optionally move) the dataset's ``champion`` alias."""
    from reasoningrec.orchestration.registry import registry_state
    from reasoningrec.orchestration.stages import load_stage_params

    return registry_state(load_stage_params(params_path), dataset, promote_version)


@task(name="report")
def report_task(params_path: str, out: str = "docs/results.md") -> dict:
    """Rewrite the results report from the tracked runs (never cached: MLflow is its input)."""
    from pathlib import Path

    from reasoningrec.orchestration.stages import load_stage_params, resolve_entry

    run_report = resolve_entry("reasoningrec.report:run_report")
    return {"report": str(run_report(load_stage_params(params_path), out=Path(out)))}
