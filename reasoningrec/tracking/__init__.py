"""MLflow tracking: where runs go, one run per experiment, provenance, the model registry.

Layout (see docs/tracking.md): ONE experiment (``tracking.experiment``) for every dataset and
method; runs are told apart by the tags of the run contract in docs/architecture.md (``dataset``,
``method``, ``k_shots``, ``seed``, ...), so one search compares methods across datasets. One
registered model per dataset, ``<tracking.model_prefix>-<dataset>``; every trained adapter becomes a
version, and the ``champion`` alias moves only to a strictly better ``valid_auc``.

Modules: :mod:`~reasoningrec.tracking.store` (store, client, lock, names), :mod:`~.runs` (logging a
run), :mod:`~.provenance` (git, hardware, DVC hashes), :mod:`~.registry` (versions, champion rule).
Importing this package loads no MLflow; the functions import it when called.
"""

from reasoningrec.tracking.provenance import dvc_hashes, git_commit, hardware, provenance_tags
from reasoningrec.tracking.registry import (
    CHALLENGER,
    SELECTION_METRIC,
    Registration,
    RegistryError,
    champion_version,
    decide_alias,
    list_versions,
    load_model,
    meets_floors,
    promote,
    register_run_model,
)
from reasoningrec.tracking.runs import (
    MODEL_ARTIFACT,
    PREDICTIONS_ARTIFACT,
    contract_tags,
    find_runs,
    flatten,
    log_model,
    log_run,
    logged_model_id,
    run_name,
)
from reasoningrec.tracking.store import (
    CHAMPION,
    TRACKING_OFF,
    artifact_root,
    disable_telemetry,
    experiment_id,
    fluent_run,
    get_client,
    global_store,
    model_uri,
    registered_model_name,
    store_lock,
    tracking_enabled,
    tracking_uri,
    ui_command,
)

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "MODEL_ARTIFACT",
    "PREDICTIONS_ARTIFACT",
    "SELECTION_METRIC",
    "TRACKING_OFF",
    "Registration",
    "RegistryError",
    "artifact_root",
    "champion_version",
    "contract_tags",
    "decide_alias",
    "disable_telemetry",
    "dvc_hashes",
    "experiment_id",
    "find_runs",
    "flatten",
    "fluent_run",
    "get_client",
    "git_commit",
    "global_store",
    "hardware",
    "list_versions",
    "load_model",
    "log_model",
    "log_run",
    "logged_model_id",
    "meets_floors",
    "model_uri",
    "promote",
    "provenance_tags",
    "register_run_model",
    "registered_model_name",
    "run_name",
    "store_lock",
    "tracking_enabled",
    "tracking_uri",
    "ui_command",
]
