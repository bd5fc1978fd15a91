"""One MLflow run per (dataset, method, K, seed): the run contract's tags, params, metrics, artifacts."""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reasoningrec.errors import ReasoningRecError
from reasoningrec.tracking.provenance import provenance_tags
from reasoningrec.tracking.store import experiment_id, fluent_run, get_client, serialised

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient

    from reasoningrec.config import Params

MODEL_ARTIFACT = "model"
PREDICTIONS_ARTIFACT = "predictions/predictions.parquet"
# MLflow's per-request limits for log_batch.
_MAX_PARAMS_PER_BATCH = 100
_MAX_METRICS_PER_BATCH = 1000
_MAX_PARAM_CHARS = 6000


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


@serialised
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
    model: Mapping[str, Any] | None = None,
) -> str:
    """Log one finished (dataset, method, K, seed) run and return its id.

    An earlier run with the same four tags (and the same ``answer_loss_weight`` and evaluation
    population, when the settings carry them) is marked deleted afterwards — soft-deleted, restorable
    in the MLflow UI — so searches see exactly one run per combination (the registry keeps its model versions).

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
        model: keyword arguments of ``mlflow.pyfunc.log_model`` (e.g.
            :func:`reasoningrec.serving.pyfunc_model_arguments`): logged after the metrics, as the
            LoggedModel ``model`` linked to this run, with the run's params and final metrics.
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
    # So is the evaluation population: a run on the paper's records never replaces one on every user.
    if "prepare.population" in flat:
        identity["population"] = flat["prepare.population"]
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
            metric_list += [Metric(k, float(v), now, step) for k, v in epoch.items() if k != "epoch" and _finite(v)]
        for start in range(0, len(metric_list), _MAX_METRICS_PER_BATCH):
            client.log_batch(run_id, metrics=metric_list[start : start + _MAX_METRICS_PER_BATCH])
        if model is not None:
            log_model(params, run_id, model)
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


def log_model(params: Params, run_id: str, arguments: Mapping[str, Any], name: str = MODEL_ARTIFACT) -> str:
    """Log a pyfunc model as the LoggedModel ``name`` of run ``run_id``; returns its model id.

    ``mlflow.pyfunc.log_model`` needs no active run in MLflow 3, but only an active run links the
    model to the run, to its step-0 metrics and params, and to the run's experiment (without one it
    lands in the default experiment): :func:`~reasoningrec.tracking.store.fluent_run` provides it.
    """
    import mlflow.pyfunc

    with fluent_run(params, run_id):
        info = mlflow.pyfunc.log_model(name=name, **dict(arguments))
    return info.model_id


def logged_model_id(client: MlflowClient, run_id: str, name: str = MODEL_ARTIFACT) -> str | None:
    """The id of run ``run_id``'s LoggedModel called ``name`` (the newest step), ``None`` if it has none."""
    run = client.get_run(run_id)
    outputs = sorted((run.outputs.model_outputs if run.outputs else []) or [], key=lambda o: o.step, reverse=True)
    for output in outputs:
        if client.get_logged_model(output.model_id).name == name:
            return output.model_id
    return None


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
