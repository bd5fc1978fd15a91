"""Flow: the whole pipeline for one dataset, as subflows (each visible on its own in the UI)."""

from __future__ import annotations

from typing import Literal

from prefect import flow

from flows.ingest_validate import ingest_validate
from flows.register import register
from flows.synthesize import synthesize
from flows.tasks import report_task
from flows.train_evaluate import train_evaluate

PHASES = ("data", "synthesis", "training", "register", "report")
Phase = Literal["data", "synthesis", "training", "register", "report"]


@flow(name="pipeline", flow_run_name="pipeline-{dataset}")
def pipeline(
    dataset: str,
    params_path: str = "params.yaml",
    through: Phase = "report",
    max_users: int | None = None,
    limit: int | None = None,
    shards: int | None = None,
    methods: list[str] | None = None,
    k_shots: list[int] | None = None,
    seeds: list[int] | None = None,
) -> dict:
    """Run the phases in order up to and including ``through``; finished work is served from cache."""
    last = PHASES.index(through)
    summaries = {"data": ingest_validate(dataset, params_path, max_users)}
    if last >= PHASES.index("synthesis"):
        summaries["synthesis"] = synthesize(dataset, params_path, limit, shards)
    if last >= PHASES.index("training"):
        summaries["training"] = train_evaluate(dataset, params_path, methods, k_shots, seeds)
    if last >= PHASES.index("register"):
        summaries["register"] = register(dataset, params_path)
    if last >= PHASES.index("report"):
        summaries["report"] = report_task(params_path)
    return summaries
