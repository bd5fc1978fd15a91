"""Chronological leave-last-out samples: per user, targets n-3/n-2/n-1 with their history windows.

With a user's items in time order (ties broken by file order), the target of ``test`` is item n-1,
``valid`` n-2, ``train`` n-3. Each target's history is the up-to ``history_len`` items right before
it, oldest first. Profile items are the first up-to ``profile_items`` items that precede every
history window: ``items[0 : min(m, max(0, n - 3 - history_len))]``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

SPLITS = (("train", 3), ("valid", 2), ("test", 1))  # (name, offset from the end)

SAMPLE_SCHEMA = pa.schema(
    [
        ("user_id", pa.string()),
        ("split", pa.string()),
        ("target_item", pa.string()),
        ("target_rating", pa.float64()),
        ("target_timestamp", pa.int64()),
        ("label", pa.int8()),
        ("history_items", pa.list_(pa.string())),
        ("history_labels", pa.list_(pa.int8())),
        ("profile_items", pa.list_(pa.string())),
        ("profile_labels", pa.list_(pa.int8())),
    ]
)


def chronological(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows grouped by user in time order; equal timestamps keep their file order."""
    ordered = frame.assign(_order=np.arange(len(frame)))
    return ordered.sort_values(["user_id", "timestamp", "_order"], kind="stable").drop(columns="_order")


def profile_span(n: int, history_len: int, profile_items: int) -> int:
    """How many of a user's first items form the profile (disjoint from every history window)."""
    return min(profile_items, max(0, n - 3 - history_len))


def build_samples(frame: pd.DataFrame, history_len: int, profile_items: int) -> tuple[pa.Table, int]:
    """One row per user x split from labelled interactions (columns incl. ``label``).

    Returns the samples table and the number of users skipped for having fewer than 3 items.
    """
    ordered = chronological(frame)
    users = ordered["user_id"].to_numpy(dtype=object)
    items = ordered["item_id"].to_numpy(dtype=object)
    ratings = ordered["rating"].to_numpy(dtype="float64")
    times = ordered["timestamp"].to_numpy(dtype="int64")
    labels = ordered["label"].to_numpy(dtype="int8")
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]]) if len(users) else np.array([], int)
    ends = np.r_[starts[1:], len(users)]
    columns: dict[str, list] = {name: [] for name in SAMPLE_SCHEMA.names}
    too_few = 0
    for start, end in zip(starts, ends, strict=True):
        n = end - start
        if n < 3:
            too_few += 1
            continue
        span = profile_span(n, history_len, profile_items)
        profile_i, profile_l = list(items[start : start + span]), labels[start : start + span].tolist()
        for split, offset in SPLITS:
            t = end - offset
            lo = max(start, t - history_len)
            columns["user_id"].append(users[start])
            columns["split"].append(split)
            columns["target_item"].append(items[t])
            columns["target_rating"].append(ratings[t])
            columns["target_timestamp"].append(times[t])
            columns["label"].append(labels[t])
            columns["history_items"].append(list(items[lo:t]))
            columns["history_labels"].append(labels[lo:t].tolist())
            columns["profile_items"].append(profile_i)
            columns["profile_labels"].append(profile_l)
    return pa.table(columns, schema=SAMPLE_SCHEMA), too_few
