"""Settings of the operations around the stages: MLflow tracking, the champion rule, Prefect."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from reasoningrec.config.base import Section


class ChampionFloors(Section):
    """What a model version must reach, besides a strictly better validation AUC, to become champion."""

    # Mean grounding of its test explanations (reasoningrec/explanations; null = no floor).
    grounding: float | None = Field(None, ge=0, le=1)
    # Share of its explanations that state a label (1 - parse_failure_rate; null = no floor).
    parse_rate: float | None = Field(None, ge=0, le=1)


class TrackingConfig(Section):
    tracking_uri: str = "sqlite:///mlflow.db"
    artifact_location: str = "mlartifacts"
    experiment: str = "reasoningrec"
    model_prefix: str = "reasoningrec"
    champion_floors: ChampionFloors = ChampionFloors()


class OrchestrationConfig(Section):
    """How Prefect runs the stages (DVC ignores this section)."""

    # thread | process (built in) | dask | ray (need prefect-dask / prefect-ray installed)
    task_runner: Literal["thread", "process", "dask", "ray"] = "thread"
    max_workers: int = Field(4, ge=1)
    # LLM synthesis fans out over this many item/user shards (one task each).
    shards: int = Field(1, ge=1)
    # Address of an existing Dask scheduler or Ray cluster; null starts a local one.
    address: str | None = None
    llm_retries: int = Field(3, ge=0)
    retry_backoff_s: float = Field(10, gt=0)
