"""Records with a planted signal for training tests."""

from __future__ import annotations

import pandas as pd


def planted(n: int, reasoning: bool = False) -> pd.DataFrame:
    """The target title decides the label: 'Toy Story' -> Yes, 'Heat' -> No."""
    rows = []
    for i in range(n):
        label = i % 2
        title = "Toy Story (1995)" if label else "Heat (1995)"
        completion = f"Prediction: {'Yes' if label else 'No'}"
        if reasoning:
            completion += "\nbecause the user enjoyed similar movies"
        rows.append({"prompt_text": f"Will the user like the target item {title}?", "completion_text": completion,
                     "label": label})
    return pd.DataFrame(rows)
