"""The ``paper`` population: hand-made records for the rule, the authors' real records for the 100%."""

from __future__ import annotations

import gzip
import json
import random

import pandas as pd
import pyarrow.parquet as pq
import pytest
from data_helpers import make_params, write

from reasoningrec.config import DATA_DIR_ENV
from reasoningrec.data.population import (
    authors_records,
    first_interaction_labels,
    history_entries,
    history_fit,
    majority_offset,
    paper_population,
    with_population,
)
from reasoningrec.data.population_report import (
    evaluated_populations,
    format_report,
    main,
    population_stats,
    repeated_inputs,
    scored_subset,
)
from reasoningrec.data.prepare import run_prepare
from reasoningrec.data.schema import interactions_frame, write_contract_table
from reasoningrec.data.split import SAMPLE_SCHEMA, build_samples
from reasoningrec.errors import ConfigError, DataError

# --- hand-made data: six users, history_len 2 ------------------------------------------------------

SEQUENCES = {  # user -> [(item, rating)], in time order
    "1": [("a", 5), ("b", 2), ("c", 5), ("d", 4), ("e", 1)],
    "2": [("f", 5), ("g", 5), ("h", 5), ("i", 5), ("j", 2)],
    "3": [("a", 5), ("c", 5), ("e", 5)],  # no record: not in the paper population
    "4": [("k", 2), ("x", 5), ("y", 5), ("k", 5)],  # the test target repeats k: first rating 2
    "5": [("p1", 5), ("p2", 5), ("p1", 5), ("p2", 5), ("p1", 5)],  # p1 and p2 share one title
    "6": [("m", 5), ("n", 4), ("o", 5), ("q", 5)],
}
TITLES = {item: f"Title {item.upper()}" for seq in SEQUENCES.values() for item, _ in seq}
TITLES["p1"] = TITLES["p2"] = "Twin Title"


def interactions(sequences=SEQUENCES):
    rows = [(u, item, r, t) for u, seq in sequences.items() for t, (item, r) in enumerate(seq)]
    cols = list(zip(*rows, strict=True))
    frame = interactions_frame(cols[0], cols[1], cols[2], cols[3])
    return frame.assign(label=(frame["rating"] > 3).astype("int8"))


def our_samples(frame):
    table, _ = build_samples(frame, history_len=2, profile_items=3)
    return table.to_pandas()


def record(history, target, label, profile=None):
    """An authors-style record: ``history`` = [(item, liked)], ``target`` an item, ``label`` the gold."""
    lines = [
        f"{'Liked' if liked else 'Disliked'} {TITLES[i]} Brand: B Description: text about {i}\n" for i, liked in history
    ]
    head = f"User Profile - {profile}\n        " if profile else ""
    text = (
        f"{head}User purchased the following items in the given order. List of recent items and their "
        f"description -\n        {''.join(lines)}\nThe user will purchase the next target item - "
        f"{TITLES[target]} Brand: B\nDo not use any information not mentioned above. Explain with reasoning "
        f'whether the user will like or dislike the next target item - "{TITLES[target]}" in atmost 100 words.'
    )
    return {"instruction": "x", "input": text, "output": f"Prediction: {'Yes' if label else 'No'} \n because."}


def scored_records():
    return [
        record([("c", 1), ("d", 1)], "e", 0),  # user 1: its own test window
        record([("f", 1), ("g", 1)], "h", 0),  # user 2: the training window, gold = j's label
        record([("x", 1), ("y", 1)], "k", 0),  # user 4: gold = the first rating of k (2)
        record([("p1", 1), ("p2", 1)], "p1", 1),  # user 5: every offset fits: the majority (test) wins
        record([("m", 1)], "n", 1),  # user 6: the training window again
    ]


def authors(test=None, valid=None, profiles=None, **kwargs):
    valid = valid if valid is not None else [record([("b", 0), ("c", 1)], "d", 1)]  # user 1 only
    return authors_records(
        {"valid": valid, "test": test if test is not None else scored_records()}, TITLES, profiles or {}, **kwargs
    )


def test_first_interaction_labels_take_the_earliest_rating():
    labels = first_interaction_labels(interactions(), like_threshold=3)
    assert labels[("4", "k")] == 0 and labels[("4", "x")] == 1 and labels[("1", "e")] == 0


def test_history_entries_and_fit():
    text = record([("a", 1), ("b", 0)], "c", 1)["input"]
    entries = history_entries(text)
    assert [e.split(" brand:")[0] for e in entries] == ["liked title a", "disliked title b"]
    assert history_fit(entries, ["title a", "title b"], [1, 0]) == (2, 0)
    assert history_fit(entries, ["title a", "title b"], [1, 1]) == (1, 0)  # polarity counts
    assert history_fit(entries, ["title b", "title a"], [0, 1]) == (1, 0)  # order counts
    assert history_fit(entries, ["title a"], [1]) == (1, -1)  # so does the length


def test_majority_offset_counts_unambiguous_records_only():
    assert majority_offset([[3], [3], [1], [1, 2, 3], [1, 3], [1, 3]], default=1) == 3
    assert majority_offset([[1, 2]], default=2) == 2


def test_paper_population_rows_follow_the_records():
    frame = interactions()
    rows, summary = paper_population(our_samples(frame), frame, authors(), like_threshold=3)
    test = rows[rows["split"] == "test"].set_index("user_id")
    assert list(test.index) == ["1", "2", "4", "5", "6"]
    assert test["target_item"].to_dict() == {"1": "e", "2": "h", "4": "k", "5": "p1", "6": "n"}
    assert test.loc["2", "history_items"].tolist() == ["f", "g"]  # our window rule at the shown target
    assert test.loc["5", "target_timestamp"] == 4  # the majority (test) offset of three that fit
    # Gold labels: e No; user 2 scored on j (rating 2) while shown h; k's first rating is 2; q liked.
    assert test["label"].to_dict() == {"1": 0, "2": 0, "4": 0, "5": 1, "6": 1}
    assert summary["test"] == {
        "records": 5,
        "matched": 5,
        "unmatched": 0,
        "shown_target": {"test": 3, "train": 2},
        "majority_shown_target": "test",
        "ambiguous_offsets": 1,
        "label_disagrees_with_record": 0,
        "label_is_not_the_shown_items": 2,
        "rows": 5,
        "likes": 2,
    }
    assert rows[rows["split"] == "valid"]["user_id"].tolist() == ["1"]
    assert list(rows.columns) == SAMPLE_SCHEMA.names


def test_with_population_keeps_train_rows_and_the_order():
    frame = interactions()
    table, _ = build_samples(frame, history_len=2, profile_items=3)
    rows, _ = paper_population(table.to_pandas(), frame, authors(), like_threshold=3)
    merged = with_population(table, rows)
    assert merged.schema == SAMPLE_SCHEMA
    out = merged.to_pandas()
    assert out["split"].value_counts().to_dict() == {"train": 6, "test": 5, "valid": 1}
    pd.testing.assert_frame_equal(
        out[out["split"] == "train"].reset_index(drop=True),
        table.to_pandas().query("split == 'train'").reset_index(drop=True),
    )
    assert out["user_id"].tolist()[:3] == ["1", "1", "1"] and out["split"].tolist()[:3] == ["train", "valid", "test"]


def test_an_unmatched_record_is_an_error_unless_a_slice_allows_it():
    frame = interactions()
    stray = record([("a", 1)], "a", 1)
    stray["input"] = stray["input"].replace("Title A", "Nobody Has This")
    with pytest.raises(DataError, match="1 of 6 records match no user"):
        paper_population(our_samples(frame), frame, authors(test=[*scored_records(), stray]), 3)
    _, summary = paper_population(
        our_samples(frame), frame, authors(test=[*scored_records(), stray], allow_unmatched=True), 3
    )
    assert summary["test"]["unmatched"] == 1 and summary["test"]["rows"] == 5


def test_a_target_outside_the_last_three_items_is_an_error():
    frame = interactions()
    # User 2's profile and test history identify the user; the target is its first item.
    odd = record([("h", 1), ("i", 1)], "f", 1, profile="Likes F.")
    with pytest.raises(DataError, match="not among the last three items of its user '2'"):
        paper_population(our_samples(frame), frame, authors(test=[odd], profiles={"2": "Likes F."}), 3)


def test_population_stats_by_hand():
    rows = pd.DataFrame({"label": [1, 0, 1, 1], "history_labels": [[1, 1], [0, 1], [1, 0, 0], [1]]})
    stats = population_stats(rows, fallback=0.5)
    # Scores 1, .5, 1/3, 1 -> positives {1, 1/3, 1} vs negative .5: 2 of 3 pairs ordered right.
    assert stats == {"users": 4, "like_rate": 0.75, "one_label_history": 0.5, "user_like_rate_auc": 0.667}


def test_scored_subset_is_the_authors_random_sample():
    state = random.getstate()
    try:
        random.seed(42)
        expected = random.sample([f"record {i}" for i in range(30)], 7)
    finally:
        random.setstate(state)
    assert [f"record {i}" for i in scored_subset(30, 7)] == expected


def test_repeated_inputs_and_their_report_line():
    raw = {
        "train": [{"input": "x"}, {"input": "y"}],
        "valid": [{"input": "x"}],
        "test": [{"input": "z"}, {"input": "y"}],
    }
    assert repeated_inputs(raw) == {"valid": 1, "test": 1}
    line = {
        "dataset": "d",
        "population": "all",
        "users": 2,
        "like_rate": 0.5,
        "one_label_history": 1.0,
        "user_like_rate_auc": 0.5,
        "repeated_inputs": {"test": "1 of 2"},
    }
    assert "d: records whose input is verbatim a training record's input: test 1 of 2" in format_report([line])


def test_main_without_report_prints_help(capsys):
    assert main([]) == 2 and "--report" in capsys.readouterr().out


# --- the prepare hook and its settings ------------------------------------------------------------


def _prepare(tmp_path, monkeypatch, texts: dict | None, population="paper"):
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    dataset = {"source": "table", "path": "x.csv", "kcore": {"k": 3}, "history_len": 2}
    if texts is not None:
        dataset["texts_path"] = "texts"
        for name, content in texts.items():
            target = tmp_path / "raw" / "texts" / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(gzip.compress(json.dumps(content).encode()))
    params = make_params(tmp_path, {"d": dataset}, prepare={"profile_items": 3, "population": population})
    frame = interactions().drop(columns="label")
    write_contract_table(params.work_dir("d") / "interactions.parquet", frame, "interactions")
    items = pd.DataFrame({"item_id": list(TITLES), "title": list(TITLES.values())})
    items.to_parquet(params.work_dir("d") / "items.parquet")
    return run_prepare(params, "d"), params.work_dir("d")


def test_run_prepare_paper_population(tmp_path, monkeypatch):
    texts = {"sft_valid.json.gz": [record([("b", 0), ("c", 1)], "d", 1)], "sft_test.json.gz": scored_records()}
    summary, out = _prepare(tmp_path, monkeypatch, texts)
    assert summary.samples == {"train": 6, "valid": 1, "test": 5}
    written = json.loads((out / "prepare.json").read_text())["population"]
    assert written["name"] == "paper" and written["test"]["shown_target"] == {"test": 3, "train": 2}
    assert pq.read_schema(out / "samples.parquet").names == SAMPLE_SCHEMA.names


def test_run_prepare_all_population_says_so(tmp_path, monkeypatch):
    summary, _ = _prepare(tmp_path, monkeypatch, None, population="all")
    assert summary.population == {"name": "all"} and summary.samples["test"] == 6


def test_paper_population_without_the_authors_files_is_a_config_error(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="prepare.population 'paper' needs the authors' records of dataset 'd'"):
        _prepare(tmp_path, monkeypatch, None)
    write(tmp_path / "raw" / "texts" / "user_profile_summary.json", "{}")
    with pytest.raises(ConfigError, match="no authors' records sft_valid.json.gz, sft_test.json.gz"):
        _prepare(tmp_path, monkeypatch, {})


def test_population_setting_is_checked():
    from reasoningrec.config import parse_params

    with pytest.raises(ConfigError, match="prepare.population"):
        parse_params({"prepare": {"population": "authors"}})


# --- real data: the authors' Beauty and Fashion records --------------------------------------------

# Users of a few records, read from the authors' reasoning_test_dict.pkl (their user ids) in
# github.com/millenniumbismay/llm-based-seq-rec @ a9c826f: an independent check of the matching.
KNOWN_TEST_USERS = {"beauty": {434: "449", 485: "501", 0: "0"}, "fashion": {0: "0", 895: "1255"}}
LEFT_OUT_OF_FASHION = {"1256", "1257", "1258", "1260", "1264", "1265", "1266", "1267", "1270", "1272"}


@pytest.fixture(scope="module")
def paper_run(shared_data, tmp_path_factory):
    """Ingest, prepare on the paper population and import, for Beauty and Fashion."""
    from conftest import REPO_ROOT

    from reasoningrec.config import parse_params
    from reasoningrec.data.ingest import run_ingest
    from reasoningrec.importer.stage import run_import

    mp = pytest.MonkeyPatch()
    mp.setenv(DATA_DIR_ENV, str(shared_data))
    import yaml

    raw = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    raw["prepare"]["population"] = "paper"
    raw["prepare"]["max_users"] = None  # the whole datasets, not the main job's slice
    raw["validate"]["data_docs"] = False
    params = parse_params(raw)
    results = {}
    for dataset in ("beauty", "fashion"):
        out = tmp_path_factory.mktemp(f"paper-{dataset}")
        run_ingest(params, dataset, out)
        results[dataset] = (run_prepare(params, dataset, out), run_import(params, dataset, out), out, params)
    yield results
    mp.undo()


def _records(shared_data, dataset, split):
    from reasoningrec.importer.sft import parse_record

    path = shared_data / "reasoningrec-paper" / dataset / f"sft_{split}.json.gz"
    return [parse_record(r, i) for i, r in enumerate(json.loads(gzip.decompress(path.read_bytes())))]


@pytest.mark.data
@pytest.mark.parametrize("dataset", ["beauty", "fashion"])
def test_paper_rows_are_the_authors_records(paper_run, shared_data, dataset):
    """(user, target item, label) of every valid/test row = the authors' record, in their user order."""
    from reasoningrec.importer.sft import title_key
    from reasoningrec.synthesis.text import normalize_ws

    _, _, out, _ = paper_run[dataset]
    samples = pd.read_parquet(out / "samples.parquet")
    titles = pd.read_parquet(out / "items.parquet").set_index("item_id")["title"]
    profiles = json.loads((shared_data / "reasoningrec-paper" / dataset / "user_profile_summary.json").read_text())
    for split in ("valid", "test"):
        records = _records(shared_data, dataset, split)
        rows = samples[samples["split"] == split]
        rows = rows.iloc[rows["user_id"].astype(int).argsort(kind="stable")]
        assert len(rows) == len(records) and rows["user_id"].is_unique
        assert [title_key(titles[i]) for i in rows["target_item"]] == [r.target_key for r in records]
        assert rows["label"].tolist() == [r.label for r in records]
        with_profile = [(r.profile, u) for r, u in zip(records, rows["user_id"], strict=True) if r.profile]
        assert all(normalize_ws(profiles[u]) == p for p, u in with_profile) and len(with_profile) > 100
    test_users = samples.loc[samples["split"] == "test", "user_id"].astype(int).sort_values().astype(str).tolist()
    assert all(test_users[i] == u for i, u in KNOWN_TEST_USERS[dataset].items())
    if dataset == "fashion":
        assert not LEFT_OUT_OF_FASHION & set(test_users)


@pytest.mark.data
@pytest.mark.parametrize("dataset", ["beauty", "fashion"])
def test_import_on_the_paper_population_flags_no_target(paper_run, dataset):
    prepared, imported, _, _ = paper_run[dataset]
    for split in ("valid", "test"):
        s = imported.reasoning[split]
        assert s["matched"] == s["records"] == s["samples_in_split"] == prepared.samples[split]
        assert s["target_differs"] == 0 and s["label_disagreements"] == 0
        assert prepared.population[split]["label_disagrees_with_record"] == 0


@pytest.mark.data
def test_beauty_records_show_the_training_window(paper_run):
    beauty, fashion = paper_run["beauty"][0].population, paper_run["fashion"][0].population
    assert beauty["test"]["shown_target"] == {"train": 604}
    assert beauty["valid"]["shown_target"] == {"valid": 2, "train": 601}  # 2 users order a timestamp tie otherwise
    assert beauty["test"]["label_is_not_the_shown_items"] == 57
    assert fashion["test"]["shown_target"] == {"test": 896} and fashion["valid"]["shown_target"] == {"valid": 896}


@pytest.mark.data
def test_population_report_figures(paper_run, shared_data, tmp_path, monkeypatch):
    """The figures docs/paper_population.md quotes (Fashion) from the report's own functions."""
    from conftest import REPO_ROOT

    from reasoningrec.config import read_params
    from reasoningrec.data.ingest import run_ingest

    monkeypatch.setenv(DATA_DIR_ENV, str(shared_data))
    params = read_params(REPO_ROOT / "params.yaml", assignments=["prepare.max_users=null"])
    run_ingest(params, "fashion", tmp_path)
    run_prepare(params, "fashion", tmp_path)
    ours = pd.read_parquet(tmp_path / "samples.parquet")
    paper = pd.read_parquet(paper_run["fashion"][2] / "samples.parquet")
    populations = evaluated_populations(ours, paper, scored=800)
    stats = {name: population_stats(rows, 0.77) for name, rows in populations.items()}
    assert stats["all"] == {"users": 1273, "like_rate": 0.77, "one_label_history": 0.616, "user_like_rate_auc": 0.81}
    assert stats["paper"]["users"] == 896 and stats["paper"]["user_like_rate_auc"] == 0.714
    assert stats["all minus paper"] == {
        "users": 377,
        "like_rate": 0.833,
        "one_label_history": 0.968,
        "user_like_rate_auc": 0.971,
    }
    assert stats["paper, scored sample (800, seed 42)"]["users"] == 800
    assert "| fashion | paper | 896 |" in format_report(
        [{"dataset": "fashion", "population": n, **s} for n, s in stats.items()]
    )


@pytest.mark.parametrize("dataset", ["beauty", "fashion"])
def test_the_samples_suite_passes_on_the_paper_population(paper_run, dataset):
    """The checks that encode our own split's guarantees are skipped, and say why; the others pass."""
    from reasoningrec.validation import run_validation

    _, _, out, params = paper_run[dataset]
    summary = run_validation(params, dataset, "samples", out)
    assert summary.success
    skipped = [s for suite in summary.suites for s in suite.get("skipped", [])]
    reasons = " ".join(s["reason"] for s in skipped)
    assert "the paper population scores the authors' users only" in reasons
    assert "gold label" in reasons
