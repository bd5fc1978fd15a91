"""Flow: item descriptions, user profiles and reasoning, imported or generated (sharded)."""

from __future__ import annotations

from prefect import flow
from prefect.futures import wait
from prefect.tasks import exponential_backoff

from flows.tasks import call_stage, data_stage, llm_stage, merge_shards, split_shards
from reasoningrec.orchestration.runners import make_task_runner
from reasoningrec.orchestration.shards import endpoint_overrides
from reasoningrec.orchestration.stages import load_stage_params, synthesis_plan


@flow(name="synthesize-stage", flow_run_name="{stage}-{dataset}")
def synthesize_stage(
    stage: str, dataset: str, params_path: str = "params.yaml", limit: int | None = None, shards: int | None = None
) -> dict:
    """One LLM stage over ``shards`` item/user shards, each on its own server of ``llm.base_url``."""
    params = load_stage_params(params_path)
    config = params.orchestration
    llm = llm_stage.with_options(
        retries=config.llm_retries, retry_delay_seconds=exponential_backoff(config.retry_backoff_s)
    )
    options = {"limit": limit} if limit is not None else None  # per shard when sharded
    count = shards or config.shards
    work = str(params.work_dir(dataset))
    if count == 1:
        return call_stage(llm, stage, params_path, dataset, work, options)
    folders = split_shards(stage, work, count)
    futures = [
        call_stage(llm, stage, params_path, dataset, folder, options, override, submit=True)
        for folder, override in zip(folders, endpoint_overrides(params.llm.base_url, count), strict=True)
    ]
    wait(futures)
    for future in futures:
        future.result()  # raises the first shard failure (after every shard has finished)
    return merge_shards(stage, work, folders)


@flow(name="synthesize", flow_run_name="synthesize-{dataset}")
def synthesize(
    dataset: str, params_path: str = "params.yaml", limit: int | None = None, shards: int | None = None
) -> dict:
    """Import the dataset's texts where they exist, generate the rest, in pipeline order."""
    params = load_stage_params(params_path)
    fan_out = synthesize_stage.with_options(task_runner=make_task_runner(params.orchestration))
    summaries = {}
    for stage in synthesis_plan(params, dataset):
        if stage == "import_texts":
            summaries[stage] = call_stage(data_stage, stage, params_path, dataset)
        else:
            summaries[stage] = fan_out(stage, dataset, params_path, limit, shards)
    return summaries
