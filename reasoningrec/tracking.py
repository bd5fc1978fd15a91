"""MLflow runs, the model registry and the champion/challenger rule.

Layout (see docs/tracking.md): ONE experiment (``tracking.experiment``) for every dataset and
method; runs are told apart by the tags of the run contract in docs/architecture.md (``dataset``,
``method``, ``k_shots``, ``seed``, ...), so one search compares methods across datasets. One
registered model per dataset, ``<tracking.model_prefix>-<dataset>``; every trained adapter becomes a
version, and the ``champion`` alias moves only to a strictly better ``valid_auc``.

Everything goes through ``MlflowClient`` with explicit run ids: the fluent API keeps its active run
per thread, and runs are logged from Prefect worker threads too.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import platform
import subprocess
import tempfile
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reasoningrec.errors import ReasoningRecError

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

    from reasoningrec.config import Params

CHAMPION = "champion"
CHALLENGER = "challenger"
MODEL_ARTIFACT = "model"
PREDICTIONS_ARTIFACT = "predictions/predictions.parquet"
SELECTION_METRIC = "valid_auc"
# MLflow's per-request limits for log_batch.
_MAX_PARAMS_PER_BATCH = 100
_MAX_METRICS_PER_BATCH = 1000
_MAX_PARAM_CHARS = 6000


class RegistryError(ReasoningRecError):
    """A registered model, version or alias the user asked for does not exist."""


# --------------------------------------------------------------------------- where runs go


def disable_telemetry() -> None:
    """MLflow phones home by default; the pipeline runs on closed networks."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def tracking_uri(params: Params) -> str:
    """``$MLFLOW_TRACKING_URI`` when set, else ``tracking.tracking_uri`` (relative to the cwd)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or params.tracking.tracking_uri


# ``tracking.tracking_uri`` values (and ``$REASONINGREC_TRACKING`` values) that turn tracking off.
TRACKING_OFF = frozenset({"none", "off", "false", "0", "disabled"})


def tracking_enabled(params: Params) -> bool:
    """False when ``$REASONINGREC_TRACKING=off`` or the tracking URI is ``none``.

    Without tracking, stages write every file but log nothing and never import mlflow; their
    summaries keep what :func:`log_run` needs, to log the run later (``reasoningrec.experiment.log_saved_run``).
    """
    if os.environ.get("REASONINGREC_TRACKING", "").strip().lower() in TRACKING_OFF:
        return False
    return tracking_uri(params).strip().lower() not in TRACKING_OFF


def artifact_root(params: Params) -> str | None:
    """Artifact location for a new experiment: a local folder URI for local stores, else the server's."""
    uri = tracking_uri(params)
    if uri.startswith(("http://", "https://", "databricks")):
        return None  # a tracking server decides where artifacts live
    location = params.tracking.artifact_location
    if "://" in location:
        return location
    return Path(location).resolve().as_uri()


def get_client(params: Params) -> MlflowClient:
    """A client bound to this run's tracking and registry store (no global MLflow state touched)."""
    disable_telemetry()
    from mlflow import MlflowClient

    uri = tracking_uri(params)
    return MlflowClient(tracking_uri=uri, registry_uri=os.environ.get("MLFLOW_REGISTRY_URI") or uri)


_STORE_LOCKS: dict[str, Any] = {}
_STORE_LOCKS_GUARD = threading.Lock()


def store_lock(params: Params):
    """A lock shared by every process that writes to this run's local SQLite store (else a no-op).

    SQLite admits one writer at a time and answers "database is locked" to a writer that waits past
    its busy timeout (or at once, to avoid a deadlock between two upgrading readers), so processes
    logging runs at the same time (the quality run's worker pool, Prefect's process runner) take
    this file lock (``<db>.lock``) around each run's writes. Reentrant within a thread.
    """
    uri = tracking_uri(params)
    db = uri.removeprefix("sqlite:///").split("?", 1)[0] if uri.startswith("sqlite:///") else ""
    if not db or db == ":memory:":
        return contextlib.nullcontext()
    path = f"{Path(db).resolve()}.lock"
    from filelock import FileLock

    with _STORE_LOCKS_GUARD:  # one FileLock object per file, or re-entry from one thread would block
        if path not in _STORE_LOCKS:
            _STORE_LOCKS[path] = FileLock(path)
        return _STORE_LOCKS[path]


def _serialised(func):
    """Run ``func(params, ...)`` holding :func:`store_lock` (one process writes at a time)."""

    @functools.wraps(func)
    def locked(params, *args, **kwargs):
        with store_lock(params):
            return func(params, *args, **kwargs)

    return locked


def experiment_id(client: MlflowClient, params: Params) -> str:
    """Id of ``tracking.experiment``, created (with the configured artifact folder) on first use."""
    name = params.tracking.experiment
    found = client.get_experiment_by_name(name)
    if found is not None:
        if found.lifecycle_stage == "deleted":
            client.restore_experiment(found.experiment_id)
        return found.experiment_id
    try:
        return client.create_experiment(name, artifact_location=artifact_root(params))
    except Exception:
        # Another process created it between the lookup and the create.
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def registered_model_name(params: Params, dataset: str) -> str:
    """``reasoningrec-<dataset>``: one registered model per dataset."""
    return f"{params.tracking.model_prefix}-{dataset}"


def model_uri(params: Params, dataset: str, alias: str = CHAMPION) -> str:
    """``models:/reasoningrec-<dataset>@<alias>``: what every loader loads."""
    return f"models:/{registered_model_name(params, dataset)}@{alias}"


# --------------------------------------------------------------------------- run tags


def git_commit(cwd: str | Path | None = None) -> str:
    """HEAD's commit hash, with ``-dirty`` when tracked files changed; ``unknown`` outside git."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd, capture_output=True, text=True, timeout=30, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if not head:
        return "unknown"
    return f"{head}-dirty" if status else head


def dvc_hashes(lock_path: str | Path, data_dir: str | Path) -> dict[str, str]:
    """``{"dvc_md5.<file>": md5}`` for every output in ``dvc.lock`` under ``data_dir`` (empty when absent).

    Args:
        lock_path: the ``dvc.lock`` file.
        data_dir: the dataset's work folder, as written in ``dvc.lock`` (relative to the repo root).
    """
    import yaml

    lock_path = Path(lock_path)
    if not lock_path.is_file():
        return {}
    lock = yaml.safe_load(lock_path.read_text(encoding="utf-8")) or {}
    prefix = Path(os.path.normpath(data_dir))
    if prefix.is_absolute():  # dvc.lock paths are relative to the repo root beside it
        try:
            prefix = prefix.relative_to(lock_path.resolve().parent)
        except ValueError:
            return {}
    hashes: dict[str, str] = {}
    for stage in (lock.get("stages") or {}).values():
        for out in (stage or {}).get("outs") or []:
            path = Path(os.path.normpath(str(out.get("path", ""))))
            digest = out.get("md5")
            if not digest or not (path == prefix or prefix in path.parents):
                continue
            relative = path.relative_to(prefix).as_posix() if path != prefix else path.name
            hashes[f"dvc_md5.{relative}"] = str(digest)
    return hashes


def hardware() -> str:
    """``cpu=<model> x<cores>; gpu=<name> x<count>`` (``gpu=none`` without CUDA)."""
    cpu = _cpu_model()
    gpu = "none"
    try:
        import torch

        if torch.cuda.is_available():
            count = torch.cuda.device_count()
            gpu = f"{torch.cuda.get_device_name(0)} x{count}"
    except ImportError:
        pass
    return f"cpu={cpu} x{os.cpu_count() or 1}; gpu={gpu}"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def provenance_tags(params: Params, dataset: str, repo_root: str | Path = ".") -> dict[str, str]:
    """Where a run was made: ``git_commit``, ``hardware`` and the ``dvc_md5.*`` of its data files."""
    return {
        "git_commit": git_commit(repo_root),
        "hardware": hardware(),
        **dvc_hashes(Path(repo_root) / "dvc.lock", params.work_dir(dataset)),
    }


def flatten(settings: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested settings as dotted MLflow params (``train.lora_r`` -> ``"8"``), values as strings."""
    flat: dict[str, str] = {}
    for key, value in settings.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            text = ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
            flat[name] = text[:_MAX_PARAM_CHARS]
    return flat


# --------------------------------------------------------------------------- runs


def run_name(dataset: str, method: str, k_shots: int | str, seed: int) -> str:
    return f"{dataset}-{method}-k{k_shots}-s{seed}"


def contract_tags(dataset: str, method: str, k_shots: int | str, seed: int) -> dict[str, str]:
    """The identifying tags of the run contract (one run per combination)."""
    return {"dataset": dataset, "method": method, "k_shots": str(k_shots), "seed": str(seed)}


def find_runs(client: MlflowClient, params: Params, **tags: Any) -> list:
    """Active runs of the experiment whose tags equal ``tags`` (newest first)."""
    exp = experiment_id(client, params)
    query = " and ".join(f"tags.{key} = '{value}'" for key, value in tags.items())
    return client.search_runs([exp], filter_string=query, order_by=["attributes.start_time DESC"])


@_serialised
def log_run(
    params: Params,
    *,
    dataset: str,
    method: str,
    k_shots: int | str,
    seed: int,
    settings: Mapping[str, Any],
    metrics: Mapping[str, float | None],
    epoch_history: Iterable[Mapping[str, Any]] = (),
    artifacts: Mapping[str, Path] | None = None,
    predictions: pd.DataFrame | None = None,
    extra_tags: Mapping[str, str] | None = None,
    repo_root: str | Path = ".",
    provenance: Mapping[str, str] | None = None,
) -> str:
    """Log one finished (dataset, method, K, seed) run and return its id.

    An earlier run with the same four tags (and the same ``answer_loss_weight``, when the settings
    carry one) is marked deleted afterwards — soft-deleted, restorable in the MLflow UI — so searches
    see exactly one run per combination (the registry keeps its model versions).

    Args:
        settings: every setting of the run (nested dicts allowed), logged as dotted params.
        metrics: final metrics; ``None`` and non-finite values are left out (e.g. no BERTScore for
            a method without reasoning).
        epoch_history: one mapping per epoch; ``epoch`` (1-based) is the step, every other numeric
            value a metric at that step (``train_loss``, ``epoch_valid_auc``).
        artifacts: ``{artifact folder: local file or folder}``, e.g. ``{"adapter": out/"adapter"}``.
        predictions: logged as ``predictions/predictions.parquet``.
        extra_tags: more tags (they may not override the contract tags).
        repo_root: where ``git`` and ``dvc.lock`` are looked up.
        provenance: the :func:`provenance_tags` of the machine that made the run, when it is logged
            later elsewhere (default: this machine's, computed now).
    """
    from mlflow.entities import Metric, Param
    from mlflow.utils.time import get_current_time_millis

    client = get_client(params)
    exp = experiment_id(client, params)
    flat = flatten({"dataset": dataset, "method": method, "k_shots": k_shots, "seed": seed, **settings})
    # The loss setting is part of a run's identity: a plain-loss and an answer-weighted run of the
    # same (dataset, method, K, seed) are two configurations (Table 3), not a rerun of one.
    identity = contract_tags(dataset, method, k_shots, seed)
    for key in ("train.answer_loss_weight", "answer_loss_weight"):
        if key in flat:
            identity["answer_loss_weight"] = str(flat[key])
            break
    previous = find_runs(client, params, **identity)
    tags = {
        **dict(extra_tags or {}),
        **identity,
        **(dict(provenance) if provenance is not None else provenance_tags(params, dataset, repo_root)),
    }
    run = client.create_run(exp, tags=tags, run_name=run_name(dataset, method, k_shots, seed))
    run_id = run.info.run_id
    try:
        now = get_current_time_millis()
        param_list = [Param(key, value) for key, value in flat.items()]
        for start in range(0, len(param_list), _MAX_PARAMS_PER_BATCH):
            client.log_batch(run_id, params=param_list[start : start + _MAX_PARAMS_PER_BATCH])
        metric_list = [Metric(k, float(v), now, 0) for k, v in metrics.items() if _finite(v)]
        for index, epoch in enumerate(epoch_history):
            step = int(epoch.get("epoch", index + 1))
            metric_list += [
                Metric(k, float(v), now, step) for k, v in epoch.items() if k != "epoch" and _finite(v)
            ]
        for start in range(0, len(metric_list), _MAX_METRICS_PER_BATCH):
            client.log_batch(run_id, metrics=metric_list[start : start + _MAX_METRICS_PER_BATCH])
        for folder, local in (artifacts or {}).items():
            local = Path(local)
            if local.is_dir():
                client.log_artifacts(run_id, str(local), artifact_path=folder)
            elif local.is_file():
                client.log_artifact(run_id, str(local), artifact_path=folder)
            else:
                raise ReasoningRecError(f"{local}: artifact {folder!r} to log does not exist")
        if predictions is not None:
            _log_predictions(client, run_id, predictions)
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")
    for old in previous:
        client.delete_run(old.info.run_id)
    return run_id


def _log_predictions(client: MlflowClient, run_id: str, predictions: pd.DataFrame) -> None:
    from reasoningrec.io import write_parquet

    folder, name = PREDICTIONS_ARTIFACT.split("/")
    with tempfile.TemporaryDirectory(prefix="reasoningrec-pred-") as tmp:
        path = write_parquet(Path(tmp) / name, predictions)
        client.log_artifact(run_id, str(path), artifact_path=folder)


def _finite(value: Any) -> bool:
    if value is None or isinstance(value, bool | str):
        return False
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


# --------------------------------------------------------------------------- registry


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


def decide_alias(new_score: float | None, champion_score: float | None, has_champion: bool) -> str:
    """The champion rule: first version, or strictly better ``valid_auc``, takes ``champion``.

    A tie, a worse score or a missing score makes the new version the ``challenger``. A champion
    without a score (promoted by hand from a run that logged none) is beaten by any scored version.
    """
    if not has_champion:
        return CHAMPION
    if new_score is None or not math.isfinite(new_score):
        return CHALLENGER
    if champion_score is None or not math.isfinite(champion_score):
        return CHAMPION
    return CHAMPION if new_score > champion_score else CHALLENGER


@_serialised
def register_run_model(
    params: Params, dataset: str, run_id: str, artifact_path: str = MODEL_ARTIFACT
) -> Registration:
    """Register the pyfunc model logged under ``artifact_path`` of a run and apply the champion rule."""
    from mlflow.exceptions import MlflowException

    client = get_client(params)
    name = registered_model_name(params, dataset)
    run = client.get_run(run_id)
    score = run.data.metrics.get(SELECTION_METRIC)
    if not client.list_artifacts(run_id, artifact_path):
        raise RegistryError(
            f"run {run_id} ({run.info.run_name}) has no {artifact_path!r} artifact to register "
            "(only fine-tuned methods log a model)"
        )
    source = f"{run.info.artifact_uri.rstrip('/')}/{artifact_path}"
    tags = {key: run.data.tags[key] for key in ("dataset", "method", "k_shots", "seed") if key in run.data.tags}
    if score is not None:
        tags[SELECTION_METRIC] = repr(float(score))
    try:
        client.get_registered_model(name)
    except MlflowException:
        client.create_registered_model(
            name, description=f"ReasoningRec LoRA adapters for dataset {dataset!r}; alias "
            f"'{CHAMPION}' = best {SELECTION_METRIC}."
        )
    version = client.create_model_version(name, source=source, run_id=run_id, tags=tags)
    number = int(version.version)
    # Read under the store lock (@_serialised): no other writer can move the alias meanwhile.
    current = champion_version(params, dataset, client=client)
    champion_score = _version_score(client, current) if current is not None else None
    alias = decide_alias(score, champion_score, current is not None)
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


@_serialised
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
        raise RegistryError(
            f"registered model {name!r} has no version {version} (versions: {listing})"
        ) from None
    previous = champion_version(params, dataset, client=client)
    challenger = champion_version(params, dataset, alias=CHALLENGER, client=client)
    client.set_registered_model_alias(name, CHAMPION, str(version))
    if challenger is not None and int(challenger.version) == int(version):
        client.delete_registered_model_alias(name, CHALLENGER)
    return None if previous is None else int(previous.version)


def list_versions(
    params: Params, dataset: str, *, client: MlflowClient | None = None
) -> list[dict[str, Any]]:
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
    with tempfile.TemporaryDirectory(prefix="reasoningrec-model-") as tmp:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=version.source, dst_path=tmp, tracking_uri=tracking_uri(params)
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


def ui_command(params: Params, host: str = "127.0.0.1", port: int = 5000) -> list[str]:
    """The ``mlflow ui`` command line for this project's store (bound to localhost by default)."""
    import shutil
    import sys

    executable = Path(sys.executable).with_name("mlflow")
    mlflow_bin = str(executable) if executable.is_file() else (shutil.which("mlflow") or "mlflow")
    command = [mlflow_bin, "ui", "--backend-store-uri", tracking_uri(params), "--host", host, "--port", str(port),
               "--workers", "1"]
    root = artifact_root(params)
    if root is not None:
        # Where runs created from the UI store artifacts; runs logged by the pipeline keep their own.
        command += ["--artifacts-destination", root]
    return command
