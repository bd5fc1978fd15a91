"""Inputs of records tests: one user's prompt parts, and the stage frames of ``n_users`` users."""

from __future__ import annotations

import numpy as np
import pandas as pd

from reasoningrec.records.prompt import ItemText

HISTORY = [
    (1, ItemText("Fresh Eau De Parfum", "Brand: Fresh", "A light fig scent that lasts.")),
    (0, ItemText("Harsh Shampoo", "Brand: Suave", "Dries the hair.")),
    (1, ItemText("Monoi Oil", "", "Jasmine coconut oil for dry skin.")),
]
TARGET = ItemText("Coconut Body Wash", "Brand: Bath & Body Works; Price: $12", "A creamy coconut wash.")
PROFILE = "The user prefers natural ingredients and gentle scents."


def stage_inputs(n_users=30):
    rng = np.random.default_rng(0)
    items = pd.DataFrame(
        {
            "item_id": [str(i) for i in range(20)],
            "title": [f"Item {i}" for i in range(20)],
            "brand": ["Acme"] * 20,
            "price": [None] * 20,
        }
    )
    rows = []
    for u in range(n_users):
        for split in ("train", "valid", "test"):
            hist = rng.choice(20, 4, replace=False).astype(str).tolist()
            rows.append(
                {
                    "user_id": str(u),
                    "split": split,
                    "target_item": str(rng.integers(20)),
                    "target_rating": 4.0,
                    "target_timestamp": 1,
                    "label": np.int8(u % 3 != 0),
                    "history_items": hist,
                    "history_labels": [1, 0, 1, 1],
                    "profile_items": [],
                    "profile_labels": [],
                }
            )
    samples = pd.DataFrame(rows)
    descriptions = pd.DataFrame({"item_id": items["item_id"], "description": "Nice.", "source": "llm", "model": "m"})
    profiles = pd.DataFrame(
        {"user_id": [str(u) for u in range(n_users)], "profile": "Likes things.", "source": "llm", "model": "m"}
    )
    reasoning = samples[samples["split"] != "test"][["user_id", "split", "label"]].assign(
        reasoning="Because.", source="llm", model="m"
    )
    return samples, items, descriptions, profiles, reasoning
