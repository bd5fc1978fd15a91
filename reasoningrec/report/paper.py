"""The paper's published numbers the report puts beside ours."""

from __future__ import annotations

PAPER_CITATION = (
    "Bismay, Dong & Caverlee (2024), ReasoningRec: Bridging Personalized Recommendations and "
    "Human-Interpretable Explanations through LLM Reasoning, Table 2 (ReasoningRec, test AUC)"
)
# The paper's published ReasoningRec test AUC by (paper dataset, K).
PAPER_AUC: dict[tuple[str, int], float] = {
    ("ML-1M", 64): 0.604, ("ML-1M", 128): 0.691, ("ML-1M", 256): 0.744,
    ("Fashion", 64): 0.675, ("Fashion", 128): 0.762, ("Fashion", 256): 0.786,
    ("Beauty", 64): 0.741, ("Beauty", 128): 0.768, ("Beauty", 256): 0.798,
}  # fmt: skip
# Our dataset names -> the paper's (the Amazon 2018 files are the raw source of the paper's data).
PAPER_DATASET = {
    "ml1m": "ML-1M", "fashion": "Fashion", "amazon2018-fashion": "Fashion",
    "beauty": "Beauty", "amazon2018-beauty": "Beauty",
}  # fmt: skip
