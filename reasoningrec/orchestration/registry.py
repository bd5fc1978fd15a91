"""The registry step of the pipeline: optionally move ``champion`` by hand, then report who holds it."""

from __future__ import annotations

from typing import Any

from reasoningrec.config import Params


def registry_state(params: Params, dataset: str, promote_version: int | None = None) -> dict[str, Any]:
    """Promote ``promote_version`` (when given) and summarise the dataset's registered versions.

    New versions are registered, and win ``champion`` on a better ``valid_auc``, inside each
    experiment run (``reasoningrec.tracking.register_run_model``); this step is the audit and the
    manual override.
    """
    from reasoningrec import tracking

    previous = tracking.promote(params, dataset, promote_version) if promote_version is not None else None
    versions = tracking.list_versions(params, dataset)
    holder = {alias: row["version"] for row in versions for alias in row["aliases"]}
    return {
        "registered_model": tracking.registered_model_name(params, dataset),
        "versions": len(versions),
        "champion": holder.get(tracking.CHAMPION),
        "challenger": holder.get(tracking.CHALLENGER),
        "promoted": promote_version,
        "previous_champion": previous,
        "champion_valid_auc": next(
            (row["valid_auc"] for row in versions if row["version"] == holder.get(tracking.CHAMPION)), None
        ),
    }
