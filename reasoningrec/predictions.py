"""The predictions schema: one row per scored record, written as ``predictions.parquet``.

Every writer (experiments, ``reasoningrec score``, the baselines) builds its rows here, so every
reader (metrics, the report, MLflow artifacts, runs logged later) sees the same columns:

=================  ========  ======================================================================
column             type      meaning
=================  ========  ======================================================================
user_id            string    the user
split              string    ``valid`` or ``test``
target_item        string    the item asked about (null where the scorer does not know it)
label              int8      the true label (1 = like)
p_yes              float64   P(Yes)
explanation        string    the reasoning the model wrote (null: not explained)
stated_label       Int8      the label its completion states (null: not explained, or no prediction
                             found in a free-mode completion)
reference          string    the reasoning ground truth without its prediction line (null: none)
=================  ========  ======================================================================
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import pandas as pd

from reasoningrec.answer import strip_answer

if TYPE_CHECKING:
    from reasoningrec.scoring import Explanation

COLUMNS = ("user_id", "split", "target_item", "label", "p_yes", "explanation", "stated_label", "reference")


def predictions_frame(
    records: pd.DataFrame, p_yes: Sequence[float], explanations: Mapping[int, Explanation] | None = None
) -> pd.DataFrame:
    """Rows for ``records`` (``user_id``, ``split``, ``label``; optional ``target_item``, ``reference``)
    with their scores; ``explanations`` maps a row position of ``records`` to its explanation."""
    explanations = explanations or {}
    n = len(records)
    if len(p_yes) != n:
        raise ValueError(f"{len(p_yes)} scores for {n} records")

    def column(name: str) -> list:
        return records[name].tolist() if name in records else [None] * n

    explained = [explanations.get(i) for i in range(n)]
    return pd.DataFrame(
        {
            "user_id": pd.Series(records["user_id"].astype(str).to_numpy(), dtype="string"),
            "split": pd.Series(records["split"].astype(str).to_numpy(), dtype="string"),
            "target_item": pd.Series([None if v is None else str(v) for v in column("target_item")], dtype="string"),
            "label": pd.Series(records["label"].astype("int8").to_numpy(), dtype="int8"),
            "p_yes": pd.Series(p_yes, dtype="float64"),
            "explanation": pd.Series([e.reasoning if e else None for e in explained], dtype="string"),
            "stated_label": pd.Series([e.label if e else None for e in explained], dtype="Int8"),
            "reference": pd.Series([strip_answer(r) or None for r in column("reference")], dtype="string"),
        },
        columns=list(COLUMNS),
    )


def concat(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Several splits' rows as one frame (an empty frame with the schema when there are none)."""
    kept = [f for f in frames if len(f)]
    if not kept:
        return predictions_frame(pd.DataFrame({"user_id": [], "split": [], "label": []}), [])
    return pd.concat(kept, ignore_index=True)
