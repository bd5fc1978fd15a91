"""The import stage on a small folder and on the real Beauty, Fashion and ML-1M texts."""

from __future__ import annotations

import gzip
import json

import pandas as pd
import pytest
from conftest import data_file
from importer_data import FIGURES, TITLES, record, samples_frame

from reasoningrec.config import DATA_DIR_ENV, parse_params
from reasoningrec.errors import DataError
from reasoningrec.importer.files import read_records
from reasoningrec.importer.frames import IMPORTED_MODEL
from reasoningrec.importer.stage import run_import


def test_run_import_on_a_small_folder(tmp_path, monkeypatch):
    texts = tmp_path / "raw" / "texts"
    texts.mkdir(parents=True)
    (texts / "processed_item_information.json").write_text(
        json.dumps(
            {k: {"title": v, "description": "\n\nProduct Description: A nice thing."} for k, v in TITLES.items()}
        )
    )
    (texts / "user_profile_summary.json").write_text(json.dumps({"1": "\nLikes mild soap."}))
    with gzip.open(texts / "sft_train.json.gz", "wt") as handle:
        json.dump([record(label="No"), record(profile=False, target="Balm")], handle)
    out = tmp_path / "work"
    out.mkdir()
    samples_frame(
        [("1", "train", "3", 1, ["1", "2"], [1, 0], ["4"]), ("2", "train", "5", 1, ["1", "2"], [1, 0], [])]
    ).to_parquet(out / "samples.parquet")
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "raw"))
    params = parse_params({"datasets": {"mine": {"source": "table", "path": "x", "texts_path": "texts"}}})
    summary = run_import(params, "mine", out)
    assert summary.written == ["descriptions.parquet", "profiles.parquet", "reasoning.parquet"]
    descriptions = pd.read_parquet(out / "descriptions.parquet")
    assert descriptions["description"].tolist() == ["A nice thing."] * 5  # boilerplate stripped
    assert set(descriptions["model"]) == {IMPORTED_MODEL} and set(descriptions["source"]) == {"imported"}
    profiles = pd.read_parquet(out / "profiles.parquet")
    assert profiles["profile"].tolist() == ["Likes mild soap.", ""]
    reasoning = pd.read_parquet(out / "reasoning.parquet")
    assert reasoning["user_id"].tolist() == ["1", "2"]
    assert reasoning["label"].tolist() == [1, 1]  # samples' label kept...
    assert reasoning["label_agrees"].tolist() == [False, True]  # ...the disagreement flagged
    assert reasoning["valid"].tolist() == [False, True] and reasoning["problem"][0] == "label_disagrees"
    assert summary.reasoning["train"]["label_disagreements"] == 1
    assert json.loads((out / "import.json").read_text())["reasoning"]["train"]["matched"] == 2


def test_reasoning_needssamples_frame(tmp_path, monkeypatch):
    texts = tmp_path / "texts"
    texts.mkdir()
    with gzip.open(texts / "sft_test.json.gz", "wt") as handle:
        json.dump([record()], handle)
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    params = parse_params({"datasets": {"mine": {"source": "paper", "path": "texts"}}})
    with pytest.raises(DataError, match="samples.parquet.*prepare"):
        run_import(params, "mine", tmp_path / "out")
    (texts / "sft_test.json.gz").write_text("not gzip")
    with pytest.raises(DataError, match="sft_test.json.gz"):
        read_records(texts / "sft_test.json.gz")


# --- real data: the exact figures of the authors' files ---------------------------------------


@pytest.fixture(scope="module")
def imported(shared_data, tmp_path_factory):
    """Ingest + prepare (the data engineer's stages) and import, for Beauty and Fashion."""
    prepare = pytest.importorskip("reasoningrec.data.prepare")
    ingest = pytest.importorskip("reasoningrec.data.ingest")
    from conftest import REPO_ROOT

    from reasoningrec.config import read_params

    mp = pytest.MonkeyPatch()
    mp.setenv(DATA_DIR_ENV, str(shared_data))
    params = read_params(REPO_ROOT / "params.yaml", assignments=["prepare.max_users=null"])
    results = {}
    for dataset in ("beauty", "fashion"):
        out = tmp_path_factory.mktemp(dataset)
        ingest.run_ingest(params, dataset, out)
        prepare.run_prepare(params, dataset, out)
        results[dataset] = (run_import(params, dataset, out), out)
    yield results
    mp.undo()


@pytest.mark.data
@pytest.mark.parametrize("dataset", ["beauty", "fashion"])
def test_real_import_matches_every_record(imported, dataset):
    summary, out = imported[dataset]
    counts, noes, n_profiles = FIGURES[dataset]
    reasoning = pd.read_parquet(out / "reasoning.parquet")
    samples = pd.read_parquet(out / "samples.parquet")
    for split, count, no in zip(("train", "valid", "test"), counts, noes, strict=True):
        s = summary.reasoning[split]
        assert s["records"] == count and s["records_no"] == no
        assert s["match_rate"] >= 0.995, s  # measured: 1.0 everywhere but Beauty test (602/604)
        assert s["label_disagreements"] <= 4
    # One reasoning per (user, split), labels taken from samples.parquet.
    assert not reasoning.duplicated(["user_id", "split"]).any()
    joined = reasoning.merge(samples, on=["user_id", "split"], suffixes=("", "_s"))
    assert len(joined) == len(reasoning) and (joined["label"] == joined["label_s"]).all()
    assert (joined["target_item"] == joined["target_item_s"]).all()
    profiles = pd.read_parquet(out / "profiles.parquet")
    assert (profiles["profile"] != "").sum() == n_profiles == summary.profiles["imported"]
    assert len(pd.read_parquet(out / "descriptions.parquet")) == len(
        json.loads((data_file(f"reasoningrec-paper/{dataset}") / "processed_item_information.json").read_text())
    )


@pytest.mark.data
def test_real_fashion_records_carry_their_own_targets(imported):
    summary, _ = imported["fashion"]
    assert all(summary.reasoning[s]["target_differs"] == 0 for s in ("train", "valid", "test"))


@pytest.mark.data
def test_real_beauty_valid_test_records_repeat_the_training_window(imported):
    """The authors' Beauty valid/test records show the training target: flagged, never silently kept."""
    summary, out = imported["beauty"]
    reasoning = pd.read_parquet(out / "reasoning.parquet")
    assert summary.reasoning["train"]["target_differs"] <= 2
    for split in ("valid", "test"):
        rows = reasoning[reasoning["split"] == split]
        assert summary.reasoning[split]["target_differs"] > len(rows) // 2
        assert not rows.loc[~rows["target_agrees"], "valid"].any()


@pytest.mark.data
def test_real_ml1m_movie_summaries(shared_data, tmp_path, monkeypatch):
    from conftest import REPO_ROOT

    from reasoningrec.config import read_params

    monkeypatch.setenv(DATA_DIR_ENV, str(shared_data))
    summary = run_import(read_params(REPO_ROOT / "params.yaml"), "ml1m", tmp_path)
    frame = pd.read_parquet(tmp_path / "descriptions.parquet")
    assert summary.written == ["descriptions.parquet"] and len(frame) == 3883
    assert frame.loc[frame["item_id"] == "1", "description"].item().startswith("Toy Story is a groundbreaking")
    assert frame["valid"].mean() > 0.99
