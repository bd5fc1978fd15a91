"""The interactions contract (ids, ratings, timestamps), the settings checked before data, and the
array kernels (repeats, k-core, samples, reviews) against plain reference implementations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from reasoningrec.config import parse_params
from reasoningrec.data.contract import Totals, check_chunk, clean_ids
from reasoningrec.data.kcore import kcore_mask, order_by, repeats
from reasoningrec.data.reviews import item_reviews, sample_reviews
from reasoningrec.data.schema import interactions_frame, write_contract_table
from reasoningrec.data.sources import Chunk
from reasoningrec.errors import ConfigError, DataError


def chunk(users, items=None, ratings=None, stamps=None):
    n = len(users)
    table = pa.table(
        {
            "user_id": pa.array(users, pa.string()),
            "item_id": pa.array(items or ["i"] * n, pa.string()),
            "rating": pa.array(ratings or [5.0] * n, pa.float64()),
            "timestamp": pa.array(stamps or [1] * n, pa.int64()),
            "review": pa.nulls(n, pa.string()),
        }
    )
    return Chunk(table, "f.csv", lambda i: {"line": i + 2}, {"user_id": "user", "rating": "stars"})


def test_ids_are_stripped_counted_and_merged():
    fix = clean_ids(chunk(["196", " 196", "7 ", "a b"]), "user_id")
    assert fix.array.to_pylist() == ["196", "196", "7", "a b"] and fix.stripped_rows == 2
    totals = Totals()
    table, fixes = check_chunk(chunk(["196", " 196", "7 "]), 1, 5)
    totals.add(table, fixes)
    table, fixes = check_chunk(chunk(["7", "8"]), 1, 5)
    totals.add(table, fixes)
    assert sorted(totals.distinct("user_id").to_pylist()) == ["196", "7", "8"]
    assert totals.stripped["user_id"] == 2 and totals.merged("user_id") == 2  # " 196" and "7 " joined others


@pytest.mark.parametrize("users, problem", [([" ", "1"], "empty id"), ([None, "1"], "required field is missing")])
def test_empty_or_missing_ids_name_the_line(users, problem):
    with pytest.raises(DataError, match=problem) as err:
        clean_ids(chunk(users), "user_id")
    assert (err.value.line, err.value.field) == (2, "user")


@pytest.mark.parametrize(
    "ratings, stamps, field, line",
    [
        ([5.0, float("nan")], [1, 1], "stars", 3),
        ([5.0, float("inf")], [1, 1], "stars", 3),
        ([5.0, 6.0], [1, 1], "stars", 3),
        ([5.0, 5.0], [1, -1], "timestamp", 3),
    ],
)
def test_ratings_and_timestamps_in_range(ratings, stamps, field, line):
    with pytest.raises(DataError, match="outside the allowed range") as err:
        check_chunk(chunk(["a", "b"], ratings=ratings, stamps=stamps), 1, 5)
    assert (err.value.field, err.value.line) == (field, line)


def test_setting_errors_name_the_key_before_any_data():
    with pytest.raises(ConfigError, match=r"validate: .*rating_min \(6\) is above rating_max \(5\)"):
        parse_params({"validate": {"rating_min": 6, "rating_max": 5}})
    with pytest.raises(ConfigError, match=r"datasets.x.encoding: .*unknown text encoding 'nope'"):
        parse_params({"datasets": {"x": {"source": "table", "path": "a.csv", "encoding": "nope"}}})
    with pytest.raises(ConfigError, match=r"datasets.x.columns: .*unknown key\(s\) \['usr'\]"):
        parse_params({"datasets": {"x": {"source": "table", "path": "a.csv", "columns": {"usr": "u"}}}})
    assert (
        parse_params({"datasets": {"x": {"source": "movielens1m", "path": "m"}}}).dataset("x").text_encoding()
        == "latin-1"
    )


def test_repeats_match_pandas_on_random_keys():
    rng = np.random.default_rng(3)
    for _ in range(20):
        n = int(rng.integers(1, 300))
        keys = [rng.integers(0, 4, n), rng.integers(0, 3, n), rng.integers(0, 5, n)]
        frame = pd.DataFrame({f"k{j}": k for j, k in enumerate(keys)})
        later, every = repeats(keys)
        assert (later == frame.duplicated(keep="first").to_numpy()).all()
        assert (every == frame.duplicated(keep=False).to_numpy()).all()


def test_order_by_is_stable_and_handles_wide_keys():
    major, minor = np.array([2, 1, 2, 1, 1]), np.array([5, 5, 1, 5, 0])
    assert order_by(major, minor).tolist() == [4, 1, 3, 2, 0]
    wide = np.array([2**40, 0, 2**40]), np.array([2**40, 2**41, 0])
    assert order_by(*wide).tolist() == [1, 2, 0]


def reference_kcore(users, items, k, mode):
    frame = pd.DataFrame({"u": users, "i": items})
    while True:
        frame = frame[frame.groupby("u")["i"].transform("size") >= k]
        if mode == "user":
            return set(frame.index)
        sizes = frame.groupby("i")["u"].transform("size")
        if (sizes >= k).all():
            return set(frame.index)
        frame = frame[sizes >= k]


@pytest.mark.parametrize("mode", ["user", "iterative"])
def test_kcore_mask_matches_the_definition(mode):
    rng = np.random.default_rng(5)
    users, items = rng.integers(0, 40, 600), rng.integers(0, 60, 600)
    for k in (2, 5, 12):
        kept = kcore_mask(users, items, np.ones(600, dtype=bool), k, mode)
        assert set(np.flatnonzero(kept)) == reference_kcore(users, items, k, mode)


def test_lazy_review_sampling_equals_the_in_memory_one(tmp_path):
    rng = np.random.default_rng(0)
    n = 400
    texts = [
        None if i % 9 == 0 else ("  " if i % 11 == 0 else f"review {i} " + "w " * int(rng.integers(1, 80)))
        for i in range(n)
    ]
    frame = interactions_frame(
        [f"u{i % 30}" for i in range(n)],
        [f"i{int(x)}" for x in rng.integers(0, 25, n)],
        rng.integers(1, 6, n).astype(float),
        np.arange(n),
        texts,
    )
    path = write_contract_table(tmp_path / "interactions.parquet", frame, "interactions")
    codes, names = pd.factorize(frame["item_id"])
    keep = np.flatnonzero(rng.random(n) < 0.8)
    lazy = item_reviews(
        path,
        keep,
        codes[keep],
        frame["rating"].to_numpy()[keep],
        pa.array(np.asarray(names, dtype=object), pa.string()),
        p=4,
        words=6,
        seed=42,
    )
    eager = sample_reviews(frame.iloc[keep], p=4, words=6, seed=42)
    assert lazy["item_id"].tolist() == eager["item_id"].tolist()
    assert [list(r) for r in lazy["reviews"]] == [list(r) for r in eager["reviews"]]
