"""Duplicate removal and k-core filtering, on integer codes (pandas wrappers for small frames).

One definition serves prepare and validation: :func:`repeat_mask` marks the rows that repeat an
earlier (user, item, timestamp), :func:`kcore_mask` the rows that survive the k-core.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def order_by(major: np.ndarray, minor: np.ndarray) -> np.ndarray:
    """Row order sorted by ``major`` then ``minor``, ties in file order (a stable sort).

    Both keys are non-negative-able integers; one combined int64 key when it fits, else lexsort.
    """
    if not len(major):
        return np.zeros(0, dtype=np.int64)
    low = int(minor.min())
    span = int(minor.max()) - low + 1
    if int(major.max()) + 1 < (1 << 62) // span and int(major.min()) >= 0:
        return np.argsort(major.astype(np.int64) * span + (minor - low), kind="stable")
    return np.lexsort((np.arange(len(major)), minor, major))


def repeat_mask(users: np.ndarray, items: np.ndarray, timestamps: np.ndarray, order: np.ndarray | None = None,
                *, every: bool = False) -> np.ndarray:
    """True for each row that repeats an earlier row's (user, item, timestamp) in file order.

    ``every``: mark every row of a repeated key instead, first occurrence included. ``order`` may
    pass in :func:`order_by` ``(users, timestamps)`` when the caller has it. Only rows that share a
    (user, timestamp) with another row are compared item by item, so the cost is one sort.
    """
    n = len(users)
    out = np.zeros(n, dtype=bool)
    if n < 2:
        return out
    order = order_by(users, timestamps) if order is None else order
    u, t = users[order], timestamps[order]
    same = (u[1:] == u[:-1]) & (t[1:] == t[:-1])
    if not same.any():
        return out
    tied = np.zeros(n, dtype=bool)
    tied[1:] |= same
    tied[:-1] |= same
    rows = order[tied]  # in (user, timestamp) order, file order within a tie
    frame = pd.DataFrame({"u": users[rows], "t": timestamps[rows], "i": items[rows]})
    flagged = frame.duplicated(keep=False) if every else frame.duplicated(keep="first")
    out[rows[flagged.to_numpy()]] = True
    return out


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


def user_sort_key(ids: pd.Series) -> pd.Series:
    """Natural order of user ids: numeric when every id is an integer, else lexicographic."""
    numeric = pd.to_numeric(ids, errors="coerce")
    return numeric if numeric.notna().all() else ids.astype(str)


def first_users(frame: pd.DataFrame, n: int) -> pd.DataFrame:
    """Interactions of the first ``n`` users in natural id order (a deterministic slice)."""
    users = pd.Series(frame["user_id"].unique())
    keep = users.iloc[user_sort_key(users).sort_values(kind="stable").index[:n]]
    return frame[frame["user_id"].isin(set(keep))]
