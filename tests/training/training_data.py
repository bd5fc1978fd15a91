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
        rows.append(
            {
                "prompt_text": f"Will the user like the target item {title}?",
                "completion_text": completion,
                "label": label,
            }
        )
    return pd.DataFrame(rows)


def records_frame(n_train: int, n_valid: int, k_shots: int) -> pd.DataFrame:
    """A ``records.parquet`` frame of the ``full`` variant: ``n_train`` train records (all in the
    K-shot set ``k_shots``) and ``n_valid`` validation records of varied length, labels mixed, the
    planted titles blurred by filler words (so a briefly trained model's AUC is neither 0.5 nor 1)."""
    from reasoningrec.records.kshot import kshot_column

    fillers = ["gentle scent", "soft fabric", "strong perfume", "cheap zipper", "lasting cream"]
    rows = []
    for split, n in (("train", n_train), ("valid", n_valid)):
        for i in range(n):
            label = (i * 7 + len(split)) % 3 % 2
            title = "Toy Story (1995)" if label else "Heat (1995)"
            extra = " ".join(fillers[(i + j) % len(fillers)] for j in range(i % 4))
            rows.append(
                {
                    "user_id": f"{split}{i}",
                    "split": split,
                    "label": label,
                    "variant": "full",
                    "target_item": f"item{i}",
                    "prompt_text": f"The user liked {extra}. Will the user like the target item {title}?",
                    "completion_text": f"Prediction: {'Yes' if label else 'No'}",
                }
            )
    frame = pd.DataFrame(rows)
    frame["label"] = frame["label"].astype("int8")
    frame[kshot_column(k_shots)] = frame["split"] == "train"
    return frame
