"""Duplicate removal and k-core filtering, on integer codes (pandas wrappers for small frames).

One definition serves prepare and validation: :func:`repeat_mask` marks the rows that repeat an
earlier (user, item, timestamp), :func:`kcore_mask` the rows that survive the k-core.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def order_by(major: np.ndarray, minor: np.ndarray) -> np.ndarray:
    """Row order sorted by ``major`` then ``minor``, ties in file order (a stable sort).

    One combined int64 key when it fits, else ``np.lexsort``.
    """
    if not len(major):
        return np.zeros(0, dtype=np.int64)
    low = int(minor.min())
    span = int(minor.max()) - low + 1
    base = int(major.min())
    if (int(major.max()) - base + 1) < (1 << 62) // span:
        return np.argsort((major.astype(np.int64) - base) * span + (minor - low), kind="stable")
    return np.lexsort((np.arange(len(major)), minor, major))


def repeats(keys: list[np.ndarray], order: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose tuple of ``keys`` (integer arrays) repeats: (each later occurrence, every occurrence).

    "Later" is in file order. Rows are sorted by the first and last key (``order`` may pass that
    sort in); only rows tied on both are compared on the keys between: one sort plus the ties.
    """
    n = len(keys[0])
    later, every = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    if n < 2:
        return later, every
    if len(keys) == 1:
        series = pd.Series(keys[0])
        return series.duplicated(keep="first").to_numpy(), series.duplicated(keep=False).to_numpy()
    first, last = keys[0], keys[-1]
    order = order_by(first, last) if order is None else order
    a, b = first[order], last[order]
    same = (a[1:] == a[:-1]) & (b[1:] == b[:-1])
    if not same.any():
        return later, every
    tied = np.zeros(n, dtype=bool)
    tied[1:] |= same
    tied[:-1] |= same
    rows = order[tied]  # sorted by (first, last), file order within a tie
    frame = pd.DataFrame({f"k{j}": key[rows] for j, key in enumerate(keys)})
    later[rows[frame.duplicated(keep="first").to_numpy()]] = True
    every[rows[frame.duplicated(keep=False).to_numpy()]] = True
    return later, every


def repeated(keys: list[np.ndarray], every: bool = False, order: np.ndarray | None = None) -> np.ndarray:
    """True for each row whose tuple of ``keys`` repeats an earlier row's (``every``: each row of a
    repeated tuple, the first included); see :func:`repeats`."""
    return repeats(keys, order)[1 if every else 0]


def repeat_mask(
    users: np.ndarray,
    items: np.ndarray,
    timestamps: np.ndarray,
    order: np.ndarray | None = None,
    *,
    every: bool = False,
) -> np.ndarray:
    """True for each row that repeats an earlier row's (user, item, timestamp) in file order.

    ``order`` may pass in :func:`order_by` ``(users, timestamps)`` when the caller has it.
    """
    return repeated([users, items, timestamps], every=every, order=order)


def kcore_mask(users: np.ndarray, items: np.ndarray, keep: np.ndarray, k: int, mode: str = "user") -> np.ndarray:
    """Rows (among ``keep``) of users, and in ``iterative`` mode items, with at least ``k`` interactions.

    ``user``: one pass over users, what the paper's code does. ``iterative``: alternate user and item
    filtering until both hold, the usual k-core definition.
    """
    if mode not in ("user", "iterative"):
        raise ValueError(f"unknown k-core mode {mode!r}")
    keep = keep.copy()
    n_users = int(users.max()) + 1 if len(users) else 0
    n_items = int(items.max()) + 1 if len(items) else 0
    while True:
        counts = np.bincount(users[keep], minlength=n_users)
        keep &= counts[users] >= k
        if mode == "user":
            return keep
        counts = np.bincount(items[keep], minlength=n_items)
        enough = counts[items] >= k
        if bool(enough[keep].all()):
            return keep
        keep &= enough


def natural_order(ids: np.ndarray) -> np.ndarray:
    """Positions of ``ids`` (strings) in natural order: numeric when every id is an integer, else text."""
    numeric = pd.to_numeric(pd.Series(ids, dtype=object), errors="coerce")
    key = numeric if numeric.notna().all() else pd.Series(ids, dtype=object).astype(str)
    return key.sort_values(kind="stable").index.to_numpy()


# --- pandas frames (tests, small tables) -------------------------------------------------------


def _codes(column: pd.Series) -> np.ndarray:
    return pd.factorize(column, use_na_sentinel=False)[0]


def drop_duplicates(frame: pd.DataFrame) -> pd.DataFrame:
    """Drop exact repeats of (user, item, timestamp), keeping the first occurrence in file order."""
    repeats = repeat_mask(_codes(frame["user_id"]), _codes(frame["item_id"]), frame["timestamp"].to_numpy())
    return frame[~repeats]


def kcore(frame: pd.DataFrame, k: int, mode: str = "user") -> pd.DataFrame:
    """Interactions of users (and, in ``iterative`` mode, items) with at least ``k`` interactions."""
    keep = kcore_mask(_codes(frame["user_id"]), _codes(frame["item_id"]), np.ones(len(frame), dtype=bool), k, mode)
    return frame[keep]


def first_users(frame: pd.DataFrame, n: int) -> pd.DataFrame:
    """Interactions of the first ``n`` users in natural id order (a deterministic slice)."""
    users = pd.unique(frame["user_id"].to_numpy(dtype=object))
    return frame[frame["user_id"].isin(set(users[natural_order(users)[:n]]))]
