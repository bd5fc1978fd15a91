"""Flow: raw files -> validated interactions -> samples -> validated samples."""

from __future__ import annotations

from prefect import flow

from flows.tasks import call_stage, data_stage


@flow(name="ingest-validate", flow_run_name="ingest-validate-{dataset}")
def ingest_validate(dataset: str, params_path: str = "params.yaml", max_users: int | None = None) -> dict:
    """Ingest, validate interactions (GX), prepare samples, validate samples. Stops at the first failure."""
    summaries = {"ingest": call_stage(data_stage, "ingest", params_path, dataset)}
    summaries["validate_interactions"] = call_stage(data_stage, "validate_interactions", params_path, dataset)
    options = {"max_users": max_users} if max_users is not None else None
    summaries["prepare"] = call_stage(data_stage, "prepare", params_path, dataset, options=options)
    summaries["validate_samples"] = call_stage(data_stage, "validate_samples", params_path, dataset)
    return summaries
