"""No-model baselines every learned method must beat: the user's and the item's like-rate."""

from __future__ import annotations

import numpy as np
import pandas as pd

from reasoningrec.baselines.common import UserSequence


def global_like_rate(sequences: dict[str, UserSequence]) -> float:
    """Share of liked items among all training interactions (0.5 when there are none)."""
    labels = [label for seq in sequences.values() for label in seq.labels]
    return float(np.mean(labels)) if labels else 0.5


def user_like_rate(samples: pd.DataFrame, fallback: float) -> np.ndarray:
    """Per sample: share of liked items in the history that sample shows; ``fallback`` when empty."""
    return np.array([float(np.mean(labels)) if len(labels) else fallback for labels in samples["history_labels"]])


def item_like_rates(sequences: dict[str, UserSequence], prior_rate: float, prior_strength: float) -> dict[str, float]:
    """Each training item's like-rate, shrunk towards ``prior_rate`` by ``prior_strength`` pseudo-counts."""
    likes: dict[str, int] = {}
    counts: dict[str, int] = {}
    for seq in sequences.values():
        for item, label in zip(seq.items, seq.labels, strict=True):
            likes[item] = likes.get(item, 0) + int(label)
            counts[item] = counts.get(item, 0) + 1
    return {item: (likes[item] + prior_strength * prior_rate) / (counts[item] + prior_strength) for item in counts}


def item_like_rate(samples: pd.DataFrame, rates: dict[str, float], prior_rate: float) -> np.ndarray:
    """Per sample: the target item's smoothed training like-rate; ``prior_rate`` for unseen items."""
    return np.array([rates.get(str(item), prior_rate) for item in samples["target_item"]])
