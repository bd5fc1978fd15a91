"""Explanation quality beyond BERTScore: grounding, hallucinated items, personalisation, PETER's
feature metrics (FMR, FCR, DIV, USR), length and repetition, and an optional LLM judge.

Definitions and measured reference values: docs/explanations.md. The API the pipeline calls:

* :func:`build_vocabulary` / :func:`vocabulary_from_work_dir`, :func:`write_vocabulary`,
  :func:`read_vocabulary`: the feature vocabulary (a versioned JSON artifact, :data:`VOCABULARY_FILE`);
* :func:`explanation_metrics`: (summary of floats, per-row frame with the evidence) of explanations;
* :func:`judge_explanations`: the optional LLM judge (``params.explanations.judge``).
"""

from reasoningrec.explanations.context import DatasetFrames, ExplanationContext, build_contexts
from reasoningrec.explanations.features import (
    VOCABULARY_FILE,
    FeatureVocabulary,
    build_vocabulary,
    read_vocabulary,
    vocabulary_from_work_dir,
    write_vocabulary,
)
from reasoningrec.explanations.judge import judge_explanations
from reasoningrec.explanations.mentions import TitleIndex
from reasoningrec.explanations.quality import explanation_metrics

__all__ = [
    "VOCABULARY_FILE",
    "DatasetFrames",
    "ExplanationContext",
    "FeatureVocabulary",
    "TitleIndex",
    "build_contexts",
    "build_vocabulary",
    "explanation_metrics",
    "judge_explanations",
    "read_vocabulary",
    "vocabulary_from_work_dir",
    "write_vocabulary",
]
