"""k-core, chronological samples, review sampling and the prepare stage on hand-built interactions."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from data_helpers import make_params

from reasoningrec.config import DATA_DIR_ENV
from reasoningrec.data.kcore import drop_duplicates, first_users, kcore
from reasoningrec.data.prepare import run_prepare
from reasoningrec.data.reviews import allocate, sample_item_reviews, sample_reviews
from reasoningrec.data.schema import interactions_frame, write_contract_table
from reasoningrec.data.split import build_samples, profile_span
from reasoningrec.errors import DataError


def frame(rows):
    """rows: (user, item, rating, timestamp[, review])."""
    cols = list(zip(*rows, strict=True))
    review = cols[4] if len(cols) > 4 else None
    return interactions_frame(cols[0], cols[1], cols[2], cols[3], review)


def test_drop_duplicates_keeps_first_occurrence():
    f = frame([("u", "a", 5, 1), ("u", "a", 1, 1), ("u", "a", 3, 2)])
    out = drop_duplicates(f)
    assert out["rating"].tolist() == [5.0, 3.0]


def test_kcore_user_mode_is_one_pass_and_iterative_converges():
    # u1: a b c ; u2: a b ; u3: a c d. With k=3: user mode keeps u1,u3 (6 rows). Iterative: items
    # b (1 left) and d (1) fall, then u1 (a,c) and u3 (a,c) fall below 3 -> nothing left.
    f = frame(
        [
            ("u1", "a", 5, 1),
            ("u1", "b", 5, 2),
            ("u1", "c", 5, 3),
            ("u2", "a", 5, 1),
            ("u2", "b", 5, 2),
            ("u3", "a", 5, 1),
            ("u3", "c", 5, 2),
            ("u3", "d", 5, 3),
        ]
    )
    assert sorted(kcore(f, 3, "user")["user_id"].unique()) == ["u1", "u3"]
    assert kcore(f, 3, "iterative").empty
    # k=2 iterative: d (only u3) drops, u3 keeps a,c -> stable with every user and item >= 2.
    kept = kcore(f, 2, "iterative")
    assert "d" not in set(kept["item_id"]) and kept.groupby("item_id").size().min() >= 2
    assert kept.groupby("user_id").size().min() >= 2


def test_first_users_uses_numeric_order():
    f = frame([("10", "a", 5, 1), ("9", "a", 5, 1), ("2", "a", 5, 1)])
    assert sorted(first_users(f, 2)["user_id"]) == ["2", "9"]


def test_profile_span_rule():
    assert [profile_span(n, 5, 15) for n in (3, 8, 9, 30)] == [0, 0, 1, 15]


def test_samples_targets_histories_profile_and_tie_break():
    # One user, 12 items; items 3 and 4 share a timestamp and keep file order; rows shuffled by time.
    times = [10, 20, 30, 40, 40, 60, 70, 80, 90, 100, 110, 120]
    rows = [("u", f"i{i}", 5 if i % 2 else 2, t) for i, t in enumerate(times)]
    shuffled = [rows[k] for k in (11, 0, 5, 3, 4, 1, 2, 6, 7, 8, 9, 10)]
    f = frame(shuffled).assign(label=lambda d: (d["rating"] > 3).astype("int8"))
    table, too_few = build_samples(f, history_len=4, profile_items=15)
    s = table.to_pandas().set_index("split")
    assert too_few == 0
    assert s.loc["test", "target_item"] == "i11" and s.loc["valid", "target_item"] == "i10"
    assert s.loc["train", "target_item"] == "i9"
    assert list(s.loc["train", "history_items"]) == ["i5", "i6", "i7", "i8"]
    assert list(s.loc["test", "history_items"]) == ["i7", "i8", "i9", "i10"]
    assert list(s.loc["test", "history_labels"]) == [1, 0, 1, 0]
    # n=12, h=4: profile = items[0 : 12-3-4] = i0..i4, with i3 before i4 (file order breaks the tie)
    assert list(s.loc["train", "profile_items"]) == ["i0", "i1", "i2", "i3", "i4"]
    assert list(s.loc["test", "profile_labels"]) == [0, 1, 0, 1, 0]
    assert s.loc["test", "label"] == 1 and s.loc["test", "target_timestamp"] == 120
    assert str(table.schema.field("history_labels").type) == "list<item: int8>"


def test_short_users_skipped_and_short_histories_allowed():
    f = frame([("a", "x", 5, 1), ("a", "y", 5, 2), ("b", "x", 4, 1), ("b", "y", 1, 2), ("b", "z", 5, 3)])
    f = f.assign(label=(f["rating"] > 3).astype("int8"))
    table, too_few = build_samples(f, history_len=10, profile_items=15)
    s = table.to_pandas().set_index("split")
    assert too_few == 1 and table.num_rows == 3
    assert list(s.loc["train", "history_items"]) == [] and list(s.loc["test", "history_items"]) == ["x", "y"]
    assert list(s.loc["test", "profile_items"]) == []


def test_allocation_is_proportional_and_capped():
    assert allocate({5.0: 8, 1.0: 2}, 5) == {5.0: 4, 1.0: 1}
    assert allocate({5.0: 1, 1.0: 1}, 10) == {5.0: 1, 1.0: 1}


def test_review_sampling_without_replacement_deterministic_trimmed():
    ratings = np.array([5.0] * 30 + [1.0] * 10)
    texts = [f"review number {i} " + "word " * 100 for i in range(40)]
    first = sample_item_reviews(ratings, texts, p=10, words=5, seed=42, item_id="A")
    assert first == sample_item_reviews(ratings, texts, p=10, words=5, seed=42, item_id="A")
    assert first != sample_item_reviews(ratings, texts, p=10, words=5, seed=7, item_id="A")
    assert len(first) == 10 and len(set(first)) == 10  # no duplicates
    assert all(len(r.split()) == 5 for r in first)
    low = [r for r in first if int(r.split()[2]) >= 30]
    assert len(low) >= 2  # 25% of reviews are 1-star -> floor(10 * 0.25) = 2 at least


def test_review_sampling_few_reviews_and_no_text():
    f = frame(
        [("u", "a", 5, 1, "one two three"), ("v", "a", 1, 2, "four"), ("u", "b", 5, 3, None), ("v", "b", 4, 4, "  ")]
    )
    out = sample_reviews(f, p=10, words=2, seed=1).set_index("item_id")["reviews"]
    assert sorted(out["a"]) == ["four", "one two"] and list(out["b"]) == []


@pytest.fixture
def prepared(tmp_path, monkeypatch):
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)

    def run(rows, k=2, mode="user", max_users=None, **dataset):
        params = make_params(
            tmp_path,
            {"d": {"source": "table", "path": "x.csv", "kcore": {"k": k, "mode": mode}, "history_len": 2, **dataset}},
            prepare={"profile_items": 3, "reviews_per_item": 2},
        )
        write_contract_table(params.work_dir("d") / "interactions.parquet", frame(rows), "interactions")
        return run_prepare(params, "d", max_users=max_users), params.work_dir("d")

    return run


def test_run_prepare_writes_samples_reviews_and_summary(prepared):
    rows = [("1", f"i{j}", 5 if j % 3 else 2, j, f"text {j}") for j in range(7)]
    rows += [("2", "i0", 4, 1, "x"), ("2", "i1", 4, 2, None), ("2", "i1", 4, 2, None), ("3", "i0", 1, 5, None)]
    summary, out = prepared(rows, k=3)
    samples = pq.read_table(out / "samples.parquet")
    assert samples.schema.names == [
        "user_id",
        "split",
        "target_item",
        "target_rating",
        "target_timestamp",
        "label",
        "history_items",
        "history_labels",
        "profile_items",
        "profile_labels",
    ]
    assert summary.samples == {"train": 1, "valid": 1, "test": 1}
    assert summary.duplicates_dropped == 1
    assert summary.users_dropped == {"kcore": 2, "max_users": 0, "fewer_than_3_items": 0}
    assert summary.users_with_profile_items == 1  # n=7, h=2 -> 2 profile items
    reviews = pd.read_parquet(out / "item_reviews.parquet").set_index("item_id")["reviews"]
    assert list(reviews["i3"]) == ["text 3"] and len(reviews) == 7
    assert json.loads((out / "prepare.json").read_text())["interactions"] == 7


def test_run_prepare_max_users_and_labels(prepared):
    rows = [(u, f"i{j}", r, j) for u in ("10", "2", "3") for j, r in enumerate([3, 4, 5])]
    summary, out = prepared(rows, k=3, max_users=2)
    s = pd.read_parquet(out / "samples.parquet")
    assert sorted(s["user_id"].unique()) == ["2", "3"] and summary.users_dropped["max_users"] == 1
    assert s.set_index(["user_id", "split"]).loc[("2", "train"), "label"] == 0  # rating 3 is not > 3
    assert s["label"].sum() == 4


def test_no_user_survives_kcore_is_an_error(prepared, tmp_path):
    rows = [("1", "a", 5, 1), ("1", "b", 5, 2), ("2", "a", 5, 1)]
    with pytest.raises(DataError) as err:
        prepared(rows, k=20)
    message = str(err.value)
    assert "'d'" in message and "k=20" in message and "most interactions any user has is 2" in message
    assert not (tmp_path / "work" / "d" / "samples.parquet").exists()
    assert not (tmp_path / "work" / "d" / "prepare.json").exists()


def test_prepare_without_ingest_says_so(tmp_path, monkeypatch):
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    params = make_params(tmp_path, {"d": {"source": "table", "path": "x.csv"}})
    with pytest.raises(DataError, match="reasoningrec ingest"):
        run_prepare(params, "d")
