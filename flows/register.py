"""Flow: audit the dataset's registered model and, on request, move ``champion`` to a version."""

from __future__ import annotations

from prefect import flow

from flows.tasks import registry_task


@flow(name="register", flow_run_name="register-{dataset}")
def register(dataset: str, params_path: str = "params.yaml", promote_version: int | None = None) -> dict:
    """Report champion/challenger of ``reasoningrec-<dataset>``; ``promote_version`` moves champion."""
    return registry_task(params_path, dataset, promote_version)
