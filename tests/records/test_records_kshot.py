"""K-shot sets: label-stratified, nested, seeded."""

from __future__ import annotations

import numpy as np

from reasoningrec.records.kshot import kshot_members


def test_kshots_are_stratified_and_nested():
    labels = np.array([1] * 150 + [0] * 50)
    np.random.default_rng(0).shuffle(labels)
    masks = kshot_members(labels, [16, 64, 128], seed=42)
    for k, mask in masks.items():
        assert mask.sum() == k
        assert abs(labels[mask].mean() - 0.75) <= 1 / k + 1e-9  # within one record of the share
    assert (masks[16] <= masks[64]).all() and (masks[64] <= masks[128]).all()
    again = kshot_members(labels, [16, 64, 128], seed=42)
    other = kshot_members(labels, [16, 64, 128], seed=43)
    assert (again[64] == masks[64]).all() and not (other[64] == masks[64]).all()
