"""The report's explanation sections: quality per method (docs/explanations.md defines every column)
and, so a reader can see what the numbers mean, each fine-tuned method's most and least grounded
explanation beside the history items its prompt showed."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from reasoningrec.methods import METHODS
from reasoningrec.report.cells import MISSING, Cell, base_method, k_sort_key, method_sort_key

if TYPE_CHECKING:
    import pandas as pd

    from reasoningrec.report.blocks import Block

# (column header, run metric): the metrics of explanations, then BERTScore and the answer's consistency.
COLUMNS = (
    ("grounding", "expl_grounding"),
    ("invented items", "expl_hallucinated_item_rate"),
    ("personalised", "expl_personalisation"),
    ("FMR", "expl_fmr"),
    ("FCR", "expl_fcr"),
    ("DIV", "expl_div"),
    ("USR", "expl_usr"),
    ("words", "expl_words"),
    ("BERTScore F1", "test_bertscore_f1"),
    ("parse failures", "parse_failure_rate"),
    ("stated = scored", "stated_label_agreement"),
)
REFERENCE_PREFIX = "reference_"
EXAMPLE_WORDS = 80


def _value(cell: Cell, metric: str) -> str:
    mean, std = cell.mean(metric), cell.std(metric)
    if mean is None:
        return MISSING
    return f"{mean:.3f}" + (f" ± {std:.3f}" if std is not None else "")


def quality_rows(cells: dict[tuple, Cell]) -> list[list[str]]:
    """One row per (method, K) that wrote explanations, then the ground truth's row: the same metrics
    on the reasoning texts of the same test records (shown with the full ReasoningRec prompt)."""
    explained = sorted(
        (c for c in cells.values() if c.n("expl_words")),
        key=lambda c: (method_sort_key(c.method), k_sort_key(c.k_shots)),
    )
    rows = [[c.method, c.k_shots, str(len(c.runs)), *(_value(c, metric) for _, metric in COLUMNS)] for c in explained]
    full = [c for c in explained if base_method(c.method) == "reasoningrec" and c.n(REFERENCE_PREFIX + "expl_words")]
    if full:
        reference = max(full, key=lambda c: k_sort_key(c.k_shots))
        values = [
            _value(reference, REFERENCE_PREFIX + metric) if metric.startswith("expl_") else MISSING
            for _, metric in COLUMNS
        ]
        rows.append(["ground truth (reasoning texts of the same records)", MISSING, str(len(reference.runs)), *values])
    return rows


def explanation_blocks(dataset: str, cells: dict[tuple, Cell], examples: dict[str, pd.DataFrame]) -> list[Block]:
    from reasoningrec.report.blocks import Block

    rows = quality_rows(cells)
    if not rows:
        return []
    blocks = [
        Block("h3", "Explanation quality (test explanations, mean ± std over seeds)"),
        Block(
            "p",
            "grounding: share of the item references and feature terms an explanation names that its own "
            "prompt contains; invented items: references to items the prompt does not show; personalised: "
            "share citing the user's history items or specific profile traits; FMR/FCR/DIV/USR: PETER's "
            "feature matching, coverage, diversity (lower is better) and unique-sentence ratios. Definitions: "
            "docs/explanations.md. The ground-truth row applies the same metrics to the reasoning texts the "
            "methods were trained on, for the same test records.",
        ),
        Block("table", header=["method", "K", "seeds", *(name for name, _ in COLUMNS)], rows=rows),
    ]
    for method in sorted(examples, key=method_sort_key):
        blocks += _example_blocks(method, examples[method])
    return blocks


def _example_blocks(method: str, frame: pd.DataFrame) -> list[Block]:
    from reasoningrec.report.blocks import Block

    scored = frame[frame["grounding"].map(lambda g: g is not None and not math.isnan(g))] if len(frame) else frame
    if not len(scored) or "explanation" not in scored:
        return []
    best, worst = scored.loc[scored["grounding"].idxmax()], scored.loc[scored["grounding"].idxmin()]
    blocks = [Block("h3", f"Examples: {method}, most and least grounded explanation")]
    for label, row in (("most grounded", best), ("least grounded", worst)):
        history = "; ".join(
            f"{'liked' if int(lab) == 1 else 'disliked'} {title}"
            for title, lab in zip(row["history_titles"], row["history_labels"], strict=False)
        )
        words = str(row["explanation"]).split()
        text = " ".join(words[:EXAMPLE_WORDS]) + (" ..." if len(words) > EXAMPLE_WORDS else "")
        blocks.append(
            Block(
                "table",
                header=["", label],
                rows=[
                    ["user / target item", f"{row['user_id']} / {row['target_item']}"],
                    ["grounding", f"{row['grounding']:.3f}"],
                    ["explanation", text],
                    ["prompt's history", history or MISSING],
                    ["history items it cites", ", ".join(row["cited_history_titles"]) or MISSING],
                    ["invented items", ", ".join(row["invented_items"]) or MISSING],
                    [
                        "features it names (ungrounded)",
                        f"{', '.join(row['features']) or MISSING} ({', '.join(row['ungrounded_features']) or 'none'})",
                    ],
                ],
            )
        )
    return blocks


def example_methods() -> tuple[str, ...]:
    """The methods the examples section shows: the fine-tuned ones that explain."""
    return tuple(m.name for m in METHODS.values() if m.fine_tuned and m.explains)
