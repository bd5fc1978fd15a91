"""Chronological leave-last-out samples: per user, targets n-3/n-2/n-1 with their history windows.

With a user's items in time order (ties broken by file order), the target of ``test`` is item n-1,
``valid`` n-2, ``train`` n-3. Each target's history is the up-to ``history_len`` items right before
it, oldest first. Profile items are the first up-to ``profile_items`` items that precede every
history window: ``items[0 : min(m, max(0, n - 3 - history_len))]``.

The samples are built with array arithmetic: with rows sorted by (user, time), user ``u`` spans
``[start_u, end_u)``; a sample's target sits at ``t = end_u - offset`` and its history is
``[max(start_u, t - history_len), t)``, so every list column is one gather over those ranges.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from reasoningrec.data.kcore import order_by

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


def profile_span(n: int, history_len: int, profile_items: int) -> int:
    """How many of a user's first items form the profile (disjoint from every history window)."""
    return min(profile_items, max(0, n - 3 - history_len))


def lexicographic_rank(ids: pa.Array) -> np.ndarray:
    """Rank of each distinct id in string order (so samples come out sorted by user id)."""
    order = pc.sort_indices(ids).to_numpy()
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return rank


def _ranges(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """List offsets and the flat positions of the ranges ``[lo_i, hi_i)``."""
    lengths = hi - lo
    offsets = np.zeros(len(lo) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    positions = np.arange(offsets[-1], dtype=np.int64) - np.repeat(offsets[:-1] - lo, lengths)
    return offsets, positions


def _lists(offsets: np.ndarray, values: pa.Array) -> pa.ListArray:
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), values)


def samples_from_arrays(
    user_rank: np.ndarray,
    items: np.ndarray,
    ratings: np.ndarray,
    times: np.ndarray,
    labels: np.ndarray,
    user_ids: pa.Array,
    item_ids: pa.Array,
    rank_to_user: np.ndarray,
    history_len: int,
    profile_items: int,
) -> tuple[pa.Table, int]:
    """Samples from rows already in chronological order (sorted by user rank, time, file order).

    ``user_rank`` orders users (their rank in id order); ``rank_to_user`` maps a rank to its code in
    ``user_ids``; ``items`` are codes into ``item_ids``. Returns the table and the users skipped for
    having fewer than 3 items.
    """
    n_rows = len(user_rank)
    starts = np.flatnonzero(np.r_[True, user_rank[1:] != user_rank[:-1]]) if n_rows else np.zeros(0, np.int64)
    ends = np.r_[starts[1:], n_rows].astype(np.int64)
    counts = ends - starts
    enough = counts >= 3
    too_few = int((~enough).sum())
    starts, ends, counts = starts[enough], ends[enough], counts[enough]
    offsets = np.array([offset for _, offset in SPLITS])
    start3 = np.repeat(starts, len(SPLITS))
    target = np.repeat(ends, len(SPLITS)) - np.tile(offsets, len(starts))
    history_offsets, history = _ranges(np.maximum(start3, target - history_len), target)
    spans = np.minimum(profile_items, np.maximum(0, counts - 3 - history_len))
    profile_offsets, profile = _ranges(start3, start3 + np.repeat(spans, len(SPLITS)))
    item_values = item_ids.take(pa.array(items[history])) if len(history) else pa.array([], pa.string())
    profile_values = item_ids.take(pa.array(items[profile])) if len(profile) else pa.array([], pa.string())
    users = rank_to_user[user_rank[target]] if len(target) else np.zeros(0, np.int64)
    columns = {
        "user_id": user_ids.take(pa.array(users, pa.int64())),
        "split": pa.array(np.tile(np.array([name for name, _ in SPLITS], dtype=object), len(starts)), pa.string()),
        "target_item": item_ids.take(pa.array(items[target], pa.int64())),
        "target_rating": pa.array(ratings[target], pa.float64()),
        "target_timestamp": pa.array(times[target], pa.int64()),
        "label": pa.array(labels[target], pa.int8()),
        "history_items": _lists(history_offsets, item_values),
        "history_labels": _lists(history_offsets, pa.array(labels[history], pa.int8())),
        "profile_items": _lists(profile_offsets, profile_values),
        "profile_labels": _lists(profile_offsets, pa.array(labels[profile], pa.int8())),
    }
    return pa.table(columns, schema=SAMPLE_SCHEMA), too_few


def build_samples(frame: pd.DataFrame, history_len: int, profile_items: int) -> tuple[pa.Table, int]:
    """One row per user x split from labelled interactions (columns incl. ``label``), users in id order.

    Returns the samples table and the number of users skipped for having fewer than 3 items.
    """
    user_codes, user_values = pd.factorize(frame["user_id"].astype(str))
    item_codes, item_values = pd.factorize(frame["item_id"].astype(str))
    user_ids = pa.array(np.asarray(user_values, dtype=object), pa.string())
    rank = lexicographic_rank(user_ids)
    rank_to_user = np.argsort(rank)
    times = frame["timestamp"].to_numpy(dtype="int64")
    order = order_by(rank[user_codes], times)
    return samples_from_arrays(
        rank[user_codes][order],
        item_codes[order],
        frame["rating"].to_numpy(dtype="float64")[order],
        times[order],
        frame["label"].to_numpy(dtype="int8")[order],
        user_ids,
        pa.array(np.asarray(item_values, dtype=object), pa.string()),
        rank_to_user,
        history_len,
        profile_items,
    )
