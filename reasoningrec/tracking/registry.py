"""The model registry: one registered model per dataset, the champion/challenger rule, promotion.

Every trained adapter becomes a version of ``<tracking.model_prefix>-<dataset>``; the ``champion``
alias moves only to a strictly better ``valid_auc`` (:func:`decide_alias`).
"""

from __future__ import annotations

import logging
import math
import tempfile
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reasoningrec.errors import ReasoningRecError
from reasoningrec.tracking.runs import MODEL_ARTIFACT, logged_model_id
from reasoningrec.tracking.store import (
    CHAMPION,
    get_client,
    global_store,
    registered_model_name,
    serialised,
    tracking_uri,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

    from reasoningrec.config import Params

log = logging.getLogger(__name__)

CHALLENGER = "challenger"
SELECTION_METRIC = "valid_auc"


class RegistryError(ReasoningRecError):
    """A registered model, version or alias the user asked for does not exist."""


@dataclass(frozen=True)
class Registration:
    """Outcome of registering one model version."""

    name: str
    version: int
    alias: str  # the alias the new version got: champion or challenger
    valid_auc: float | None
    previous_champion: int | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "registered_model": self.name,
            "version": self.version,
            "alias": self.alias,
            "valid_auc": self.valid_auc,
            "previous_champion": self.previous_champion,
        }


def decide_alias(
    new_score: float | None, champion_score: float | None, has_champion: bool, *, floors_met: bool = True
) -> str:
    """The champion rule: first version, or strictly better ``valid_auc``, takes ``champion`` —
    provided its explanations meet the floors (:func:`meets_floors`).

    A tie, a worse score, a missing score or a missed floor makes the new version the ``challenger``
    (so without a champion yet, a version below the floors leaves the alias unset). A champion
    without a score (promoted by hand from a run that logged none) is beaten by any scored version.
    """
    if not floors_met:
        return CHALLENGER
    if not has_champion:
        return CHAMPION
    if new_score is None or not math.isfinite(new_score):
        return CHALLENGER
    if champion_score is None or not math.isfinite(champion_score):
        return CHAMPION
    return CHAMPION if new_score > champion_score else CHALLENGER


FLOOR_METRICS = {"grounding": "expl_grounding", "parse_rate": "parse_failure_rate"}


def meets_floors(metrics: dict[str, float], floors) -> tuple[bool, list[str]]:
    """(whether a run's metrics reach every floor set, the floors it misses); a metric the run did not
    log (a method that writes no explanation) misses its floor."""
    missed = []
    for name, floor in (("grounding", floors.grounding), ("parse_rate", floors.parse_rate)):
        if floor is None:
            continue
        value = metrics.get(FLOOR_METRICS[name])
        if value is not None and name == "parse_rate":
            value = 1.0 - value
        if value is None or not math.isfinite(value) or value < floor:
            missed.append(f"{name} {'not measured' if value is None else f'{value:.3f}'} < {floor}")
    return not missed, missed


@serialised
def register_run_model(params: Params, dataset: str, run_id: str, artifact_path: str = MODEL_ARTIFACT) -> Registration:
    """Register the LoggedModel ``artifact_path`` of a run as a new version and apply the champion rule.

    The version's source is ``models:/<model_id>``. A run logged before models were LoggedModels
    keeps its pyfunc folder among the run's artifacts; that folder is registered instead.
    """
    from mlflow.exceptions import MlflowException

    client = get_client(params)
    name = registered_model_name(params, dataset)
    run = client.get_run(run_id)
    score = run.data.metrics.get(SELECTION_METRIC)
    model_id = logged_model_id(client, run_id, artifact_path)
    if model_id is not None:
        source = f"models:/{model_id}"
    elif any(a.path == f"{artifact_path}/MLmodel" for a in client.list_artifacts(run_id, artifact_path)):
        source = f"{run.info.artifact_uri.rstrip('/')}/{artifact_path}"
    else:
        raise RegistryError(
            f"run {run_id} ({run.info.run_name}) has no logged model {artifact_path!r} to register "
            "(only fine-tuned methods log a model)"
        )
    tags = {key: run.data.tags[key] for key in ("dataset", "method", "k_shots", "seed") if key in run.data.tags}
    if score is not None:
        tags[SELECTION_METRIC] = repr(float(score))
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(
            name,
            description=f"ReasoningRec LoRA adapters for dataset {dataset!r}; alias "
            f"'{CHAMPION}' = best {SELECTION_METRIC}.",
        )
    with global_store(params):  # the SQL registry looks models:/<model_id> up through the global URI
        version = client.create_model_version(name, source=source, run_id=run_id, tags=tags, model_id=model_id)
    number = int(version.version)
    # Read under the store lock (@serialised): no other writer can move the alias meanwhile.
    current = champion_version(params, dataset, client=client)
    champion_score = _version_score(client, current) if current is not None else None
    floors_met, missed = meets_floors(dict(run.data.metrics), params.tracking.champion_floors)
    if missed:
        log.warning(
            "%s: run %s misses the champion floors (%s): registered as %s", name, run_id, "; ".join(missed), CHALLENGER
        )
    alias = decide_alias(score, champion_score, current is not None, floors_met=floors_met)
    client.set_registered_model_alias(name, alias, str(number))
    return Registration(
        name=name,
        version=number,
        alias=alias,
        valid_auc=None if score is None else float(score),
        previous_champion=None if current is None else int(current.version),
    )


def champion_version(
    params: Params, dataset: str, *, alias: str = CHAMPION, client: MlflowClient | None = None
) -> ModelVersion | None:
    """The version holding ``alias`` (``None`` when the model or the alias does not exist)."""
    from mlflow.exceptions import MlflowException

    client = client or get_client(params)
    try:
        return client.get_model_version_by_alias(registered_model_name(params, dataset), alias)
    except MlflowException:
        return None


def version_model_id(version: ModelVersion) -> str | None:
    """The LoggedModel id a version was registered from (its source ``models:/<model_id>``; the SQL
    registry does not keep the version's ``model_id`` field), ``None`` for a run-artifact source."""
    if getattr(version, "model_id", None):
        return version.model_id
    source = version.source or ""
    if source.startswith("models:/"):
        rest = source.removeprefix("models:/")
        if rest and "/" not in rest and "@" not in rest:
            return rest
    return None


def _version_score(client: MlflowClient, version: ModelVersion) -> float | None:
    """A version's ``valid_auc``: its tag, else its run's metric."""
    tag = (version.tags or {}).get(SELECTION_METRIC)
    if tag is not None:
        try:
            return float(tag)
        except ValueError:
            pass
    if version.run_id:
        try:
            return client.get_run(version.run_id).data.metrics.get(SELECTION_METRIC)
        except Exception:  # the run was purged; the version is still loadable
            return None
    return None


@serialised
def promote(params: Params, dataset: str, version: int) -> int | None:
    """Move ``champion`` to ``version`` by hand (what moving the alias in the MLflow UI does).

    Returns the previous champion's version. When the promoted version was the challenger, that
    alias is removed so one version never holds both.
    """
    from mlflow.exceptions import MlflowException

    client = get_client(params)
    name = registered_model_name(params, dataset)
    try:
        client.get_model_version(name, str(version))
    except MlflowException:
        known = list_versions(params, dataset, client=client)
        listing = ", ".join(str(v["version"]) for v in known) or "none"
        raise RegistryError(f"registered model {name!r} has no version {version} (versions: {listing})") from None
    previous = champion_version(params, dataset, client=client)
    challenger = champion_version(params, dataset, alias=CHALLENGER, client=client)
    client.set_registered_model_alias(name, CHAMPION, str(version))
    if challenger is not None and int(challenger.version) == int(version):
        client.delete_registered_model_alias(name, CHALLENGER)
    return None if previous is None else int(previous.version)


def list_versions(params: Params, dataset: str, *, client: MlflowClient | None = None) -> list[dict[str, Any]]:
    """Every version of the dataset's registered model with its aliases and ``valid_auc``."""
    from mlflow.exceptions import MlflowException

    client = client or get_client(params)
    name = registered_model_name(params, dataset)
    try:
        aliases = client.get_registered_model(name).aliases or {}
    except MlflowException:
        return []
    by_version: dict[str, list[str]] = {}
    for alias, number in aliases.items():
        by_version.setdefault(str(number), []).append(alias)
    rows = []
    for version in client.search_model_versions(f"name = '{name}'"):
        rows.append(
            {
                "version": int(version.version),
                "aliases": sorted(by_version.get(str(version.version), [])),
                "valid_auc": _version_score(client, version),
                "method": (version.tags or {}).get("method"),
                "k_shots": (version.tags or {}).get("k_shots"),
                "seed": (version.tags or {}).get("seed"),
                "run_id": version.run_id,
            }
        )
    return sorted(rows, key=lambda row: row["version"])


def load_model(params: Params, dataset: str, alias: str = CHAMPION):
    """Load ``models:/reasoningrec-<dataset>@<alias>`` as a pyfunc model.

    The alias is resolved at load time, so a champion moved by hand in the MLflow UI is respected.
    It is resolved through this run's client rather than ``mlflow.pyfunc.load_model("models:/...")``
    because MLflow resolves ``models:/`` URIs against its process-global registry URI.
    """
    import mlflow

    version = champion_version(params, dataset, alias=alias)
    if version is None:
        raise RegistryError(
            f"no version of {registered_model_name(params, dataset)!r} has alias {alias!r} "
            f"(tracking store {tracking_uri(params)}); run `reasoningrec experiment -d {dataset}` first"
        )
    location = version.source
    if model_id := version_model_id(version):  # resolved here: MLflow would use its global store
        location = get_client(params).get_logged_model(model_id).artifact_location
    with tempfile.TemporaryDirectory(prefix="reasoningrec-model-") as tmp:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=location, dst_path=tmp, tracking_uri=tracking_uri(params)
        )
        # load_context reads every weight into memory, so the download can go afterwards.
        model = mlflow.pyfunc.load_model(local)
    model.metadata.metadata = {
        **(model.metadata.metadata or {}),
        "registered_model": version.name,
        "version": int(version.version),
        "alias": alias,
    }
    return model
