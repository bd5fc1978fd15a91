"""Evaluating one run's predictions: classification metrics of P(Yes), and its explanations.

Pure functions over scores, labels and texts (the MLflow run contract's metric names are made here):
``valid_auc``, ``test_auc``, ``test_accuracy``, ``test_log_loss``, ``test_ece``,
``test_auc_ci_low/high``; for methods that explain, ``explained``, ``parse_failure_rate``,
``stated_label_agreement`` (the share of explanations whose stated label is the scored one) and
``test_bertscore_f1`` with its backbone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from reasoningrec.answer import strip_answer

if TYPE_CHECKING:
    from reasoningrec.scoring import Explanation

# ``evaluate.bertscore_model`` values that defer BERTScore (a GPU box without bert-score installed).
DEFERRED_BERTSCORE = frozenset({"none", "deferred"})
DEFERRED_BERTSCORE_PARAM = "deferred"


def evaluate_scores(
    valid: pd.DataFrame, valid_scores, test: pd.DataFrame, test_scores, *, seed: int
) -> dict[str, float]:
    """Classification metrics of P(Yes) on valid and test (AUC, accuracy, log-loss, ECE, AUC CI)."""
    from reasoningrec import metrics

    out: dict[str, float] = {}
    if len(valid):
        out["valid_auc"] = metrics.auc(valid["label"].astype(int), valid_scores)
    test_labels = test["label"].astype(int)
    for name, value in metrics.classification_metrics(test_labels, test_scores).items():
        out[f"test_{name}"] = value
    low, high = metrics.bootstrap_auc_ci(test_labels, test_scores, seed=seed)
    out["test_auc_ci_low"], out["test_auc_ci_high"] = low, high
    return out


def explain_subset(test: pd.DataFrame, limit: int | None) -> pd.DataFrame:
    """Test records to write explanations for: those with a reference first (BERTScore needs one),
    in file order, at most ``limit`` (``None`` = all)."""
    has_reference = test["reference"].map(lambda r: bool(strip_answer(r))) if "reference" in test else None
    ordered = test if has_reference is None else pd.concat([test[has_reference], test[~has_reference]])
    return ordered if limit is None else ordered.head(limit)


def consistency_metrics(explanations: Sequence[Explanation], scored: Sequence[int]) -> dict[str, float]:
    """``parse_failure_rate`` (no stated label) and ``stated_label_agreement`` (stated == scored,
    over the parsed ones; 1.0 by construction in consistent mode)."""
    from reasoningrec import metrics

    stated = [e.label for e in explanations]
    out: dict[str, float] = {
        "explained": float(len(explanations)),
        "parse_failure_rate": metrics.parse_failure_rate(stated),
    }
    pairs = [(s, int(t)) for s, t in zip(stated, scored, strict=True) if s is not None]
    if pairs:
        out["stated_label_agreement"] = sum(s == t for s, t in pairs) / len(pairs)
    return out


def bertscore_deferred(model: str) -> bool:
    """Whether ``evaluate.bertscore_model`` asks to skip BERTScore now (computed when the run is logged)."""
    return model.strip().lower() in DEFERRED_BERTSCORE


def bertscore_metrics(
    candidates: list, references: list, *, model: str, num_layers: int | None
) -> tuple[dict[str, float], dict[str, str]]:
    """BERTScore F1 of explanations against their references (pairs without a reference left out).

    Returns (metrics, params): ``test_bertscore_f1``, ``bertscore_pairs``, ``empty_explanation_rate``
    and the backbone's name, since scores from different backbones are not comparable. With a
    deferred ``model`` only the pair count is returned and the backbone param reads ``deferred``:
    explanations and references stay in predictions.parquet.
    """
    from reasoningrec import metrics

    pairs = [(str(c or "").strip(), strip_answer(r)) for c, r in zip(candidates, references, strict=True)]
    pairs = [(c, r) for c, r in pairs if r]
    if not pairs:
        return {}, {}
    # An empty explanation (the model wrote only "Prediction: ...") shares nothing with its
    # reference: F1 0. bert-score itself cannot encode an empty string under transformers 5.
    written = [(c, r) for c, r in pairs if c]
    out: dict[str, float] = {
        "bertscore_pairs": len(pairs),
        "empty_explanation_rate": (len(pairs) - len(written)) / len(pairs),
    }
    if bertscore_deferred(model):
        return out, {"bertscore_model": DEFERRED_BERTSCORE_PARAM}
    f1 = [0.0] * (len(pairs) - len(written))
    backbone = "all-MiniLM-L6-v2 (embedded)" if model == metrics.EMBEDDED_BERTSCORE else model
    if written:
        score = metrics.bertscore_f1(
            [c for c, _ in written], [r for _, r in written], model=model, num_layers=num_layers, progress="bertscore"
        )
        f1 += score.per_item
        backbone, num_layers = score.backbone, score.num_layers
    out["test_bertscore_f1"] = float(sum(f1) / len(f1))
    return out, {"bertscore_model": backbone, "bertscore_num_layers": str(num_layers)}


def evaluate_explanations(
    explanations: Sequence[Explanation],
    references: Sequence[Any],
    scored: Sequence[int],
    *,
    model: str,
    num_layers: int | None,
) -> tuple[dict[str, float], dict[str, str]]:
    """Consistency (parse rate, stated vs scored label) over every explanation; BERTScore F1 over
    those with a reference. Returns (metrics, params naming the BERTScore backbone)."""
    out = consistency_metrics(explanations, scored)
    scores, settings = bertscore_metrics(
        [e.reasoning for e in explanations], list(references), model=model, num_layers=num_layers
    )
    return {**out, **scores}, settings


def explanation_quality(
    params, dataset: str, variant: str, test: pd.DataFrame, explanations: dict[int, Explanation]
) -> tuple[dict[str, float], pd.DataFrame]:
    """Explanation metrics beyond BERTScore (:mod:`reasoningrec.explanations`) of a run's explanations
    (``expl_*``) and, as a reference row on the same records, of their ground-truth reasoning
    (``reference_expl_*``); plus the per-explanation evidence (cited and invented items, features).
    With ``explanations.judge.enabled``, the LLM judge's scores too (``judge_*``)."""
    from reasoningrec.explanations import (
        VOCABULARY_FILE,
        DatasetFrames,
        TitleIndex,
        explanation_metrics,
        judge_explanations,
        read_vocabulary,
    )

    settings = params.explanations
    work = params.work_dir(dataset)
    frames = DatasetFrames.from_work_dir(work)
    vocabulary = read_vocabulary(work / VOCABULARY_FILE, settings.vocabulary)
    index = TitleIndex.from_items(frames.items, settings.mentions)
    rows = sorted(explanations)
    keys = ["user_id", "split", "target_item", *(["history_kept"] if "history_kept" in test else [])]
    base = test.loc[rows, keys].reset_index(drop=True)
    written = base.assign(explanation=[explanations[i].reasoning for i in rows])
    summary, per_row = explanation_metrics(written, frames, vocabulary, variant=variant, settings=settings, index=index)
    per_row.insert(3, "explanation", written["explanation"].tolist())
    out = {f"expl_{k}": v for k, v in summary.items()}
    if "reference" in test:
        references = base.assign(explanation=[strip_answer(r) for r in test.loc[rows, "reference"]])
        references = references[references["explanation"].str.len() > 0]
        if len(references):
            reference, _ = explanation_metrics(
                references, frames, vocabulary, variant=variant, settings=settings, index=index
            )
            out |= {f"reference_expl_{k}": v for k, v in reference.items()}
    if settings.judge.enabled:
        judged = written.assign(prediction=[explanations[i].label for i in rows]).dropna(subset=["prediction"])
        scores, judged_rows = judge_explanations(
            judged, frames, settings.judge, cache_dir=params.paths.cache_dir, variant=variant
        )
        out |= {f"judge_{k}": v for k, v in scores.items()}
        per_row = per_row.merge(judged_rows, on=["user_id", "split", "target_item"], how="left")
    return out, per_row
