"""The baselines stage: SASRec, Caser and the like-rate heuristics on the prepared samples.

Entry point: :func:`run_baselines` (the ``reasoningrec baselines`` command and the pipeline stage);
:func:`log_saved_baselines` logs the runs of a summary written with tracking off.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from reasoningrec.methods import METHODS, names
from reasoningrec.summary import Summary

if TYPE_CHECKING:
    from reasoningrec.baselines.common import Encoded, ItemIndex
    from reasoningrec.config import Params

log = logging.getLogger(__name__)

SEQUENTIAL = names(family="sequential")
HEURISTICS = names(family="heuristic")
EVAL_SPLITS = ("valid", "test")


class BaselinesSummary(Summary):
    """``baselines/baselines.json``: per method, per seed, the metrics and the predictions file (and
    the MLflow run id, or what logging it later needs)."""

    dataset: str
    history_items: int
    users: int
    training_interactions: int
    global_like_rate: float
    seeds: list[int]
    command: str
    methods: dict[str, dict[str, Any]] = {}
    items: int | None = None
    training_examples: int | None = None


def build_model(method: str, params: Params, num_items: int, k: int):
    """A fresh SASRec or Caser sized from ``params.baselines``."""
    cfg = params.baselines
    if method == "sasrec":
        from reasoningrec.baselines.sasrec import SASRec

        return SASRec(num_items, k, cfg.hidden, cfg.layers, cfg.heads, cfg.dropout)
    if method == "caser":
        from reasoningrec.baselines.caser import Caser

        return Caser(num_items, k, cfg.hidden, cfg.caser_h_filters, cfg.caser_v_filters, cfg.dropout)
    raise ValueError(f"unknown sequential baseline {method!r}; expected one of {SEQUENTIAL}")


def train_sequential(method: str, params: Params, seed: int, index: ItemIndex, k: int, train: Encoded, valid: Encoded):
    """Seed everything, build and fit one model; returns (model, FitResult)."""
    from reasoningrec.baselines.common import FitSettings, fit, set_seed

    cfg = params.baselines
    set_seed(seed)
    model = build_model(method, params, index.size, k)
    settings = FitSettings(cfg.epochs, cfg.patience, cfg.learning_rate, cfg.batch_size, cfg.weight_decay, seed)
    return model, fit(model, train, valid, settings)


def _predictions(samples: pd.DataFrame, p_yes: np.ndarray) -> pd.DataFrame:
    from reasoningrec.predictions import predictions_frame

    return predictions_frame(samples, np.asarray(p_yes, dtype=float))


def _split_metrics(predictions: pd.DataFrame) -> dict[str, float]:
    """Contract metrics: ``valid_auc`` plus ``test_auc/accuracy/log_loss/ece``."""
    from reasoningrec.baselines.common import binary_metrics

    out: dict[str, float] = {}
    for split in EVAL_SPLITS:
        rows = predictions[predictions["split"] == split]
        if rows.empty:
            continue
        found = binary_metrics(rows["label"], rows["p_yes"])
        if split == "valid":
            out["valid_auc"] = found["auc"]
        else:
            out.update({f"test_{key}": value for key, value in found.items()})
    return out


def run_baselines(
    params: Params,
    dataset: str,
    out_dir: str | Path | None = None,
    seeds: list[int] | None = None,
    methods: tuple[str, ...] = SEQUENTIAL + HEURISTICS,
    track: bool = True,
    command: str | None = None,
) -> BaselinesSummary:
    """Run the heuristics and SASRec/Caser (one model per seed) on a prepared dataset.

    Reads ``samples.parquet`` and ``interactions.parquet`` from ``out_dir`` (default
    ``params.work_dir(dataset)``), writes ``baselines/baselines.json`` and one
    ``baselines/<method>[-seed<S>].parquet`` of predictions (:mod:`reasoningrec.predictions`; valid
    and test samples) per method and seed, and logs one MLflow run per (method, seed) through
    :func:`reasoningrec.tracking.log_run` (``k_shots`` = ``all`` for SASRec/Caser, ``0`` for the
    heuristics, which are deterministic and logged once with seed 0). ``command``: what reproduces
    the runs, kept as their ``command`` tag (default: the equivalent ``reasoningrec baselines`` call).
    """
    from reasoningrec.baselines import common, heuristics
    from reasoningrec.io import write_parquet

    unknown = [m for m in methods if m not in SEQUENTIAL + HEURISTICS]
    if unknown:
        raise ValueError(f"unknown baseline(s) {unknown}; expected from {SEQUENTIAL + HEURISTICS}")
    params.dataset(dataset)  # a clear ConfigError for an unknown name
    work = Path(out_dir) if out_dir is not None else params.work_dir(dataset)
    dest = work / "baselines"
    seeds = list(seeds) if seeds is not None else list(params.baselines.seeds)
    k = params.baselines.max_history or params.dataset(dataset).history_len
    command = command or f"reasoningrec baselines -d {dataset} --seeds {' '.join(map(str, seeds))}"

    samples = common.read_samples(work / "samples.parquet")
    interactions = common.read_interactions(work / "interactions.parquet")
    sequences = common.training_sequences(
        interactions, samples, params.prepare.like_threshold, str(work / "interactions.parquet")
    )
    evaluated = samples[samples["split"].isin(EVAL_SPLITS)].reset_index(drop=True)
    global_rate = heuristics.global_like_rate(sequences)
    summary: dict[str, Any] = {
        "dataset": dataset,
        "history_items": k,
        "users": len(sequences),
        "training_interactions": sum(len(s.items) for s in sequences.values()),
        "global_like_rate": global_rate,
        "seeds": seeds,
        "command": command,
        "methods": {},
    }

    from reasoningrec.tracking import provenance_tags, tracking_enabled

    track = track and tracking_enabled(params)
    provenance = None if track else provenance_tags(params, dataset)

    def record(method: str, seed: int, predictions: pd.DataFrame, extra: dict[str, Any], history=()) -> None:
        name = f"{method}.parquet" if METHODS[method].deterministic else f"{method}-seed{seed}.parquet"
        path = write_parquet(dest / name, predictions)
        metrics = _split_metrics(predictions)
        entry = {**metrics, **extra, "predictions": path.name}
        if track:
            entry["run_id"] = _log(params, dataset, method, seed, metrics, extra, history, predictions, command, k)
        else:  # what _log needs, to log the run later (log_saved_baselines)
            entry["tracking"] = {
                "logged": False,
                "metrics": metrics,
                "extra": extra,
                "epoch_history": list(history),
                "history_items": k,
                "provenance": provenance,
                "settings": {"baselines": params.baselines.model_dump(), "population": params.prepare.population},
            }
        summary["methods"].setdefault(method, {"seeds": {}})["seeds"][str(seed)] = entry
        log.info(
            "%s %s seed %s: valid AUC %.4f, test AUC %.4f",
            dataset,
            method,
            seed,
            metrics.get("valid_auc", float("nan")),
            metrics.get("test_auc", float("nan")),
        )

    prior = params.baselines.item_prior_strength
    if "user-like-rate" in methods:
        record("user-like-rate", 0, _predictions(evaluated, heuristics.user_like_rate(evaluated, global_rate)), {})
    if "item-like-rate" in methods:
        rates = heuristics.item_like_rates(sequences, global_rate, prior)
        p = heuristics.item_like_rate(evaluated, rates, global_rate)
        record("item-like-rate", 0, _predictions(evaluated, p), {"prior_strength": prior})

    wanted = [m for m in SEQUENTIAL if m in methods]
    if wanted:
        index = common.ItemIndex.from_sequences(sequences)
        train = common.encode_training(sequences, index, k)
        valid = common.encode_samples(samples[samples["split"] == "valid"], index, k)
        encoded_eval = common.encode_samples(evaluated, index, k)
        summary.update(items=len(index.ids), training_examples=len(train))
        for method in wanted:
            for seed in seeds:
                started = time.perf_counter()
                model, result = train_sequential(method, params, seed, index, k, train, valid)
                p = common.predict(model, encoded_eval)
                extra = {
                    "best_epoch": result.best_epoch,
                    "epochs_run": len(result.train_loss),
                    "train_seconds": round(time.perf_counter() - started, 2),
                    "training_examples": len(train),
                }
                history = [
                    {"epoch": i + 1, "train_loss": loss, "epoch_valid_auc": auc}
                    for i, (loss, auc) in enumerate(zip(result.train_loss, result.valid_auc, strict=True))
                ]
                record(method, seed, _predictions(evaluated, p), extra, history)

    for entry in summary["methods"].values():
        aucs = [s["test_auc"] for s in entry["seeds"].values() if "test_auc" in s]
        if aucs:
            entry["test_auc_mean"] = float(np.mean(aucs))
            entry["test_auc_std"] = float(np.std(aucs, ddof=1)) if len(aucs) > 1 else 0.0
    result = BaselinesSummary(**summary)
    result.write(dest / "baselines.json")
    return result


def log_saved_baselines(params: Params, dataset: str, out_dir: str | Path | None = None) -> BaselinesSummary:
    """Log the baseline runs of a ``baselines.json`` written with tracking off (e.g. on a GPU box)
    as :func:`run_baselines` would have, with the saved settings, history and machine tags; their
    run ids are written back, so entries logged already are skipped next time. Returns the summary."""
    from reasoningrec.errors import DataError

    dest = (Path(out_dir) if out_dir is not None else params.work_dir(dataset)) / "baselines"
    result = BaselinesSummary.read(dest / "baselines.json")
    summary = result.to_json()
    for method, entry in summary.get("methods", {}).items():
        for seed, run in entry.get("seeds", {}).items():
            if run.get("run_id"):
                continue
            saved = run.get("tracking")
            if not saved:
                raise DataError(
                    f"{dest / 'baselines.json'}: methods.{method}.seeds.{seed} has neither "
                    "'run_id' nor 'tracking': expected a run made with tracking off"
                )
            predictions = pd.read_parquet(dest / run["predictions"])
            run["run_id"] = _log(
                params,
                summary["dataset"],
                method,
                int(seed),
                saved["metrics"],
                saved["extra"],
                saved["epoch_history"],
                predictions,
                summary["command"],
                saved["history_items"],
                baselines_settings=saved["settings"]["baselines"],
                provenance=saved["provenance"],
                population=saved["settings"].get("population", "all"),
            )
            saved["logged"] = True
            result = BaselinesSummary(**summary)
            result.write(dest / "baselines.json")  # after each run: an interruption loses none
    return result


def _log(
    params,
    dataset,
    method,
    seed,
    metrics,
    extra,
    history,
    predictions,
    command,
    k,
    *,
    baselines_settings: dict | None = None,
    provenance: dict | None = None,
    population: str | None = None,
) -> str:
    from reasoningrec.tracking import log_run

    settings = {
        "baselines": baselines_settings or params.baselines.model_dump(),
        "history_items": k,
        "prepare": {"population": population or params.prepare.population},
        **extra,
    }
    tags = {"command": command, **({"logged_later": "true"} if provenance is not None else {})}
    return log_run(
        params,
        dataset=dataset,
        method=method,
        k_shots="0" if METHODS[method].deterministic else "all",
        seed=seed,
        settings=settings,
        metrics=metrics,
        epoch_history=history,
        predictions=predictions,
        extra_tags=tags,
        provenance=provenance,
    )
