"""The entry point: explanation metrics of a set of explanations, as a summary and one row each.

``explanation_metrics(explanations, frames, vocabulary)`` takes a frame with ``user_id``, ``split``,
``target_item`` and ``explanation`` (optionally ``history_kept`` from ``records.parquet``), rebuilds
each explanation's prompt context from the dataset's work folder, and returns

* a summary of plain floats (MLflow-ready; definitions in docs/explanations.md), and
* a per-row frame with the values and the evidence behind them: cited history items (ids and
  titles), cited features, invented items, and the history items the prompt showed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from reasoningrec.config import ExplanationsConfig
from reasoningrec.errors import DataError
from reasoningrec.explanations import metrics
from reasoningrec.explanations.context import DatasetFrames, ExplanationContext, build_contexts, item_texts
from reasoningrec.explanations.evidence import Evidence, PromptFeatures, find_evidence
from reasoningrec.explanations.features import FeatureVocabulary
from reasoningrec.explanations.mentions import TitleIndex

EXPLANATION_COLUMNS = ("user_id", "split", "target_item", "explanation")


def explanation_text(value) -> str:
    """The reasoning of an explanation: a leading ``Prediction: Yes|No`` line dropped; None/NaN -> ""."""
    from reasoningrec.answer import strip_answer

    return strip_answer(value)


def summarise(evidence: Sequence[Evidence], texts: Sequence[str], vocabulary_size: int) -> dict[str, float]:
    """The summary metrics of a set of explanations (formulas in :mod:`reasoningrec.explanations.metrics`).

    Means over explanations; ``grounding``, ``feature_grounding`` and ``item_grounding`` average only
    the explanations where they are defined (``grounding_defined`` of them); shares count every
    explanation, empty ones included.
    """
    n = len(evidence)
    if n != len(texts):
        raise ValueError(f"{n} evidence rows but {len(texts)} texts")
    tokens = [metrics.words(t) for t in texts]
    sentence_tokens = [metrics.words(s) for t in texts for s in metrics.sentences(t)]
    features = [set(e.features) for e in evidence]
    grounding = [e.grounding for e in evidence]
    return {
        "explanations": float(n),
        "empty_explanations": float(sum(1 for t in tokens if not t)),
        "grounding": metrics.mean(grounding),
        "grounding_defined": float(sum(1 for g in grounding if g == g)),
        "feature_grounding": metrics.mean(e.feature_grounding for e in evidence),
        "item_grounding": metrics.mean(e.item_grounding for e in evidence),
        "item_references": metrics.mean(e.item_references for e in evidence),
        "hallucinated_item_rate": metrics.hallucinated_item_rate(
            [len(e.invented_items) for e in evidence], [e.item_references for e in evidence]
        ),
        "hallucinating_share": metrics.share(sum(1 for e in evidence if e.invented_items), n),
        "personalisation": metrics.share(sum(e.personalised for e in evidence), n),
        "history_citation": metrics.share(sum(1 for e in evidence if e.cited_history), n),
        "target_citation": metrics.share(sum(e.cited_target for e in evidence), n),
        "features_per_explanation": metrics.mean(len(f) for f in features),
        "fmr": metrics.feature_matching_ratio(features, [set(e.target_features_named) for e in evidence])
        if n
        else float("nan"),
        "fcr": metrics.feature_coverage_ratio(features, vocabulary_size),
        "div": metrics.feature_diversity(features),
        "usr": metrics.unique_sentence_ratio(tokens),
        "usr_sentence": metrics.unique_sentence_ratio(sentence_tokens),
        "words": metrics.mean(e.words for e in evidence),
        "sentences": metrics.mean(e.sentences for e in evidence),
        "distinct_1": metrics.distinct_n(tokens, 1),
        "distinct_2": metrics.distinct_n(tokens, 2),
        "repeated_trigram_share": metrics.mean(e.repeated_trigram_share for e in evidence),
        "vocabulary_size": float(vocabulary_size),
    }


def evidence_rows(
    rows: pd.DataFrame, contexts: Sequence[ExplanationContext], evidence: Sequence[Evidence], titles: dict[str, str]
) -> pd.DataFrame:
    """The per-row frame: keys, values and evidence (lists of ids, titles and terms)."""
    records = []
    for key, context, ev in zip(
        rows[list(EXPLANATION_COLUMNS[:3])].itertuples(index=False), contexts, evidence, strict=True
    ):
        records.append(
            {
                "user_id": str(key.user_id),
                "split": str(key.split),
                "target_item": str(key.target_item),
                "words": ev.words,
                "sentences": ev.sentences,
                "repeated_trigram_share": ev.repeated_trigram_share,
                "grounding": ev.grounding,
                "feature_grounding": ev.feature_grounding,
                "item_grounding": ev.item_grounding,
                "item_references": ev.item_references,
                "hallucinated_items": len(ev.invented_items),
                "personalised": ev.personalised,
                "fmr_hit": ev.fmr_hit,
                "cited_target": ev.cited_target,
                "cited_history_items": list(ev.cited_history),
                "cited_history_titles": [titles.get(i, "") for i in ev.cited_history],
                "grounded_mentions": list(ev.grounded_mentions),
                "invented_items": list(ev.invented_items),
                "features": sorted(ev.features),
                "grounded_features": sorted(ev.grounded_features),
                "ungrounded_features": sorted(ev.features - ev.grounded_features),
                "target_features_named": sorted(ev.target_features_named),
                "traits_cited": sorted(ev.traits_cited),
                "specific_traits_cited": sorted(ev.specific_traits_cited),
                "history_items": [item.item_id for item in context.history],
                "history_labels": [item.label for item in context.history],
                "history_titles": [item.title for item in context.history],
            }
        )
    return pd.DataFrame.from_records(
        records,
        columns=None if records else ["user_id", "split", "target_item", "grounding", "personalised", "invented_items"],
    )


def explanation_metrics(
    explanations: pd.DataFrame,
    frames: DatasetFrames | str | Path,
    vocabulary: FeatureVocabulary,
    *,
    variant: str = "full",
    settings: ExplanationsConfig | None = None,
    index: TitleIndex | None = None,
) -> tuple[dict[str, float], pd.DataFrame]:
    """(summary, per-row frame) of ``explanations`` (columns :data:`EXPLANATION_COLUMNS`).

    ``frames``: the dataset's work folder or its loaded :class:`DatasetFrames`; ``variant``: the record
    variant the explanations' prompts were built with (decides what the prompt showed); ``settings``:
    ``params.explanations`` (mention rules, trait specificity); ``index``: a prebuilt
    :class:`TitleIndex` (reuse it across calls on one dataset).
    """
    settings = settings or ExplanationsConfig()
    missing = [c for c in EXPLANATION_COLUMNS if c not in explanations.columns]
    if missing:
        raise DataError("explanations", f"missing columns {missing}; expected {list(EXPLANATION_COLUMNS)}")
    if not isinstance(frames, DatasetFrames):
        frames = DatasetFrames.from_work_dir(frames)
    rows = explanations.reset_index(drop=True)
    texts_of_items = item_texts(frames)
    contexts = build_contexts(rows, frames, vocabulary.item_features, variant, texts_of_items)
    index = index or TitleIndex.from_items(frames.items, settings.mentions)
    texts = [explanation_text(v) for v in rows["explanation"]]
    evidence = [
        find_evidence(text, context, vocabulary, index, PromptFeatures.of(context, vocabulary), settings.trait_max_df)
        for text, context in zip(texts, contexts, strict=True)
    ]
    titles = {item: text.title for item, text in texts_of_items.items()}
    return summarise(evidence, texts, len(vocabulary)), evidence_rows(rows, contexts, evidence, titles)
