"""Flow: records -> one experiment (train, score, evaluate, track, register) per (method, K, seed)."""

from __future__ import annotations

from prefect import flow

from flows.tasks import call_stage, data_stage, gpu_stage
from reasoningrec.orchestration.stages import experiment_grid, load_stage_params


@flow(name="train-evaluate", flow_run_name="train-evaluate-{dataset}")
def train_evaluate(
    dataset: str,
    params_path: str = "params.yaml",
    methods: list[str] | None = None,
    k_shots: list[int] | None = None,
    seeds: list[int] | None = None,
    baselines: bool = True,
) -> dict:
    """Build records, run the experiment grid one run at a time (one GPU), then the baselines."""
    params = load_stage_params(params_path)
    summaries = {"records": call_stage(data_stage, "records", params_path, dataset)}
    for method, k, seed in experiment_grid(params, methods, k_shots, seeds):
        options = {"method": method, "k_shots": k, "seed": seed}
        summaries[f"{method}/k{k}/s{seed}"] = call_stage(gpu_stage, "experiment", params_path, dataset, None, options)
    if baselines:
        summaries["baselines"] = call_stage(gpu_stage, "baselines", params_path, dataset)
    return summaries
