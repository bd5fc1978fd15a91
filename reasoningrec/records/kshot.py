"""K-shot sampling (pure): nested, label-stratified training sets and the samples that become records."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def kshot_column(k: int) -> str:
    """Name of the boolean column marking membership of the K-shot training set."""
    return f"in_k{k}"


def stratified_order(labels: Sequence[int], seed: int) -> np.ndarray:
    """A permutation of row positions whose every prefix is stratified by label.

    Each class is shuffled with ``seed``; its i-th member of n gets the key (i + 0.5) / n and the
    rows are sorted by key. Taking the first K rows then gives each class round(K * share) members,
    within one, and smaller K-shot sets are subsets of larger ones (nested) by construction.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    keys = np.empty(labels.size, dtype=np.float64)
    tiebreak = rng.random(labels.size)
    for value in np.unique(labels):
        members = np.flatnonzero(labels == value)
        members = members[rng.permutation(members.size)]
        keys[members] = (np.arange(members.size) + 0.5) / members.size
    return np.lexsort((tiebreak, keys))


def kshot_members(labels: Sequence[int], k_shots: Sequence[int], seed: int) -> dict[int, np.ndarray]:
    """Boolean masks (one per K) of nested, label-stratified K-shot subsets of ``labels``' rows."""
    order = stratified_order(labels, seed)
    masks = {}
    for k in sorted(k_shots):
        mask = np.zeros(len(order), dtype=bool)
        mask[order[:k]] = True
        masks[k] = mask
    return masks


def select_samples(samples: pd.DataFrame, k_shots: Sequence[int], valid_size: int, seed: int) -> pd.DataFrame:
    """The samples that become records, with ``in_k<K>`` columns.

    Train: the largest K-shot set (smaller ones nested inside); valid: a stratified ``valid_size``
    subset; test: every sample. Rows keep a stable order (split, then selection order).
    """
    frames = []
    train = samples[samples["split"] == "train"].reset_index(drop=True)
    order = stratified_order(train["label"].to_numpy(), seed)
    biggest = max(k_shots) if k_shots else 0
    chosen = train.iloc[order[:biggest]].copy()
    for k in k_shots:
        chosen[kshot_column(k)] = False
        chosen.iloc[: min(k, len(chosen)), chosen.columns.get_loc(kshot_column(k))] = True
    frames.append(chosen)
    valid = samples[samples["split"] == "valid"].reset_index(drop=True)
    frames.append(valid.iloc[stratified_order(valid["label"].to_numpy(), seed + 1)[:valid_size]])
    frames.append(samples[samples["split"] == "test"])
    out = pd.concat(frames, ignore_index=True)
    for k in k_shots:
        out[kshot_column(k)] = out[kshot_column(k)].fillna(False).astype(bool)
    return out
