"""Ingest + prepare on the real public datasets: exact counts and the chronology rules.

Skipped when the shared data folder is absent (see tests/conftest.py).
"""

from __future__ import annotations

import gzip
import json
import re

import numpy as np
import pandas as pd
import pytest

from reasoningrec.config import DATA_DIR_ENV
from reasoningrec.data.ingest import run_ingest
from reasoningrec.data.prepare import run_prepare

pytestmark = pytest.mark.data


@pytest.fixture(scope="module")
def pipeline(shared_data, params, tmp_path_factory):
    """Run ingest + prepare once per dataset; returns (ingest summary, prepare summary, out dir)."""
    done: dict = {}
    patch = pytest.MonkeyPatch()
    patch.setenv(DATA_DIR_ENV, str(shared_data))

    def run(dataset):
        if dataset not in done:
            out = tmp_path_factory.mktemp(dataset)
            done[dataset] = (run_ingest(params, dataset, out), run_prepare(params, dataset, out), out)
        return done[dataset]

    yield run
    patch.undo()


def test_ml100k_counts(pipeline):
    ingest, prepare, _ = pipeline("ml100k")
    assert (ingest.rows, ingest.users, ingest.items) == (100_000, 943, 1_682)
    assert ingest.rating_histogram == {"1": 6_110, "2": 11_370, "3": 27_145, "4": 34_174, "5": 21_201}
    assert prepare.users == 943 and prepare.users_dropped["kcore"] == 0  # every user has >= 20
    assert prepare.samples == {"train": 943, "valid": 943, "test": 943}


def test_ml1m_without_timestamps(pipeline):
    ingest, prepare, _ = pipeline("ml1m")
    assert (ingest.rows, ingest.users, ingest.items) == (1_000_209, 6_040, 3_706)
    assert ingest.time_source == "file_order"
    assert prepare.users == 6_040


@pytest.mark.parametrize("dataset, counts", [("fashion", (11_136, 1_273, 6_089)), ("beauty", (4_231, 624, 1_216))])
def test_paper_data_counts(pipeline, dataset, counts):
    _, prepare, _ = pipeline(dataset)
    assert (prepare.interactions, prepare.users, prepare.items) == counts
    assert prepare.users_dropped["kcore"] == 0


def test_amazon2018_beauty_duplicates(pipeline):
    ingest, prepare, out = pipeline("amazon2018-beauty")
    assert ingest.rows == 5_269
    assert ingest.rows - prepare.duplicates_dropped == 4_161
    reviews = pd.read_parquet(out / "item_reviews.parquet")
    assert len(reviews) == prepare.items and reviews["reviews"].map(len).between(1, 10).all()
    assert all(len(set(r)) == len(r) and all(len(x.split()) <= 50 for x in r) for r in reviews["reviews"])


def test_fashion_history_len_matches_the_papers_records(pipeline, shared_data, params):
    """Every Fashion SFT record lists exactly history_len recent items; users with profile items = records."""
    _, prepare, _ = pipeline("fashion")
    h = params.dataset("fashion").history_len
    for split in ("train", "valid", "test"):
        records = json.loads(
            gzip.decompress((shared_data / f"reasoningrec-paper/fashion/sft_{split}.json.gz").read_bytes())
        )
        counts = {
            sum(line.lstrip().startswith(("Liked ", "Disliked ")) for line in r["input"].splitlines()) for r in records
        }
        assert counts == {h}
        assert len(records) == prepare.users_with_profile_items == 896


def test_beauty_history_len_is_the_longest_recent_list(shared_data, params):
    records = json.loads(gzip.decompress((shared_data / "reasoningrec-paper/beauty/sft_train.json.gz").read_bytes()))
    pattern = re.compile(r"^\s*(?:Liked|Disliked) .*? Brand: ", re.M)
    recent = [r["input"].split("List of recent items", 1)[1].split("next target item", 1)[0] for r in records]
    assert max(len(pattern.findall(text)) for text in recent) == params.dataset("beauty").history_len


@pytest.mark.parametrize("dataset", ["ml100k", "fashion", "beauty"])
def test_chronology_rules_on_real_samples(pipeline, dataset, params):
    _, _, out = pipeline(dataset)
    inter = pd.read_parquet(out / "interactions.parquet")
    samples = pd.read_parquet(out / "samples.parquet")
    h = params.dataset(dataset).history_len
    # Each user's interactions in time order, equal timestamps in file order (stable sort).
    inter = inter.iloc[np.lexsort((np.arange(len(inter)), inter["timestamp"].to_numpy()))]
    seqs = {
        u: (g["item_id"].tolist(), g["timestamp"].tolist(), g["rating"].tolist())
        for u, g in inter.groupby("user_id", sort=False)
    }
    assert (samples["label"] == (samples["target_rating"] > 3).astype("int8")).all()
    splits = samples.groupby("user_id")["split"].agg(list)
    assert all(sorted(v) == ["test", "train", "valid"] for v in splits) and len(splits) == len(seqs)
    offsets = {"train": 3, "valid": 2, "test": 1}
    for s in samples.itertuples(index=False):
        items, times, ratings = seqs[s.user_id]
        n, t = len(items), len(items) - offsets[s.split]
        assert (s.target_item, s.target_timestamp) == (items[t], times[t])
        lo = max(0, t - h)  # the history: positions lo..t-1, all strictly before the target
        assert list(s.history_items) == items[lo:t] and all(x <= times[t] for x in times[lo:t])
        assert list(s.history_labels) == [int(r > 3) for r in ratings[lo:t]]
        # Profile items come before the earliest (train) history window.
        assert list(s.profile_items) == items[: min(15, max(0, n - 3 - h))]
        assert times[n - 3] <= times[n - 2] <= times[n - 1]
