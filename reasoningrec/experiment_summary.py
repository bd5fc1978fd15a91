"""What one experiment run leaves in its ``metrics.json``: written by the experiment, read by
logging-later, the grid and the compare stage."""

from __future__ import annotations

from typing import Any

from reasoningrec.summary import Summary


class ExperimentSummary(Summary):
    """``metrics.json`` of a run: identity, metrics, and everything MLflow logs (so a run made with
    tracking off can be logged later, elsewhere, exactly as it would have been)."""

    dataset: str
    method: str
    k_shots: int
    seed: int
    variant: str
    run_dir: str
    fingerprint: str
    metrics: dict[str, float | None]
    settings: dict[str, Any]
    epoch_history: list[dict[str, Any]] = []
    extra_tags: dict[str, str] = {}
    provenance: dict[str, str] = {}
    adapter: str | None = None  # relative to run_dir (fine-tuned methods)
    bertscore_model: str | None = None
    run_id: str | None = None
    registration: dict[str, Any] | None = None
    unregistered: str | None = None
    seconds: float = 0.0
