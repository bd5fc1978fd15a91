"""Duplicate removal and k-core filtering (pure functions on an interactions frame)."""

from __future__ import annotations

import pandas as pd


def drop_duplicates(frame: pd.DataFrame) -> pd.DataFrame:
    """Drop exact repeats of (user, item, timestamp), keeping the first occurrence in file order."""
    return frame.drop_duplicates(["user_id", "item_id", "timestamp"], keep="first")


def kcore(frame: pd.DataFrame, k: int, mode: str = "user") -> pd.DataFrame:
    """Keep interactions of users (and, in ``iterative`` mode, items) with at least ``k`` interactions.

    ``user``: one pass over users, what the paper's code does. ``iterative``: alternate user and item
    filtering until both hold, the usual k-core definition.
    """
    if mode not in ("user", "iterative"):
        raise ValueError(f"unknown k-core mode {mode!r}")
    while True:
        users = frame.groupby("user_id", sort=False)["item_id"].transform("size")
        frame = frame[users >= k]
        if mode == "user":
            return frame
        items = frame.groupby("item_id", sort=False)["user_id"].transform("size")
        if bool((items >= k).all()):
            return frame
        frame = frame[items >= k]


def user_sort_key(ids: pd.Series) -> pd.Series:
    """Natural order of user ids: numeric when every id is an integer, else lexicographic."""
    numeric = pd.to_numeric(ids, errors="coerce")
    return numeric if numeric.notna().all() else ids.astype(str)


def first_users(frame: pd.DataFrame, n: int) -> pd.DataFrame:
    """Interactions of the first ``n`` users in natural id order (a deterministic slice)."""
    users = pd.Series(frame["user_id"].unique())
    keep = users.iloc[user_sort_key(users).sort_values(kind="stable").index[:n]]
    return frame[frame["user_id"].isin(set(keep))]
