"""Great Expectations validation: suites load and round-trip, real data passes, each defect is caught."""

from __future__ import annotations

import json
import sys

import pandas as pd
import pytest
from conftest import data_file

from reasoningrec.config import parse_params
from reasoningrec.data.ingest import IngestSummary
from reasoningrec.errors import ConfigError, ValidationFailed
from reasoningrec.io import read_json
from reasoningrec.validation import (
    SAMPLE_CHECK_COLUMNS,
    Check,
    chronological_positions,
    kcore_counts,
    load_suite_spec,
    parameter_names,
    run_checks,
    run_validation,
    samples_frame,
    select_expectations,
    suite_parameters,
)

THRESHOLD, HISTORY, PROFILE, K = 3, 3, 2, 5
RATINGS = [5, 4, 2, 1, 3, 5, 4, 2]


def toy_params(work_dir, allow_duplicates=(), **dataset):
    return parse_params(
        {
            "paths": {"work_dir": str(work_dir)},
            "datasets": {
                "toy": {
                    "source": "table",
                    "path": "toy.csv",
                    "kcore": {"k": K, "mode": "user"},
                    "history_len": HISTORY,
                    **dataset,
                }
            },
            "validate": {"data_docs": False, "allow_duplicates": list(allow_duplicates)},
            "prepare": {"like_threshold": THRESHOLD, "profile_items": PROFILE},
        }
    )


def toy_interactions(users: int = 4, per_user: int = 8) -> pd.DataFrame:
    """Users with 8 ratings each; the last user's ratings all share one timestamp (file order decides)."""
    rows = []
    for u in range(users):
        for i in range(per_user):
            stamp = 1_000_000_000 if u == users - 1 else 1_000_000_000 + 1000 * i + u
            rows.append((f"u{u}", f"i{(u + i) % 10}", float(RATINGS[i % 8]), stamp))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    frame["review"] = None
    return frame.sample(frac=1.0, random_state=0).sort_values("timestamp", kind="stable").reset_index(drop=True)


def build_samples(inter: pd.DataFrame, history_len: int, profile_items: int, threshold: float) -> pd.DataFrame:
    """Leave-last-out samples built independently of reasoningrec.data (the contract, by hand)."""
    rows = []
    ordered = inter.assign(_o=range(len(inter))).sort_values(["timestamp", "_o"], kind="stable")
    for user, g in ordered.groupby("user_id", sort=True):
        items, ratings, times = g["item_id"].tolist(), g["rating"].tolist(), g["timestamp"].tolist()
        n = len(items)
        span = min(profile_items, max(0, n - 3 - history_len))
        like = [int(r > threshold) for r in ratings]
        for split, t in (("train", n - 3), ("valid", n - 2), ("test", n - 1)):
            lo = max(0, t - history_len)
            rows.append(
                {
                    "user_id": user,
                    "split": split,
                    "target_item": items[t],
                    "target_rating": ratings[t],
                    "target_timestamp": times[t],
                    "label": like[t],
                    "history_items": items[lo:t],
                    "history_labels": like[lo:t],
                    "profile_items": items[:span],
                    "profile_labels": like[:span],
                }
            )
    frame = pd.DataFrame(rows)
    frame["label"] = frame["label"].astype("int8")
    return frame


def write_dataset(out, inter, samples=None, time_source="timestamp"):
    out.mkdir(parents=True, exist_ok=True)
    inter.to_parquet(out / "interactions.parquet", index=False)
    if samples is not None:
        samples.to_parquet(out / "samples.parquet", index=False)
    IngestSummary(
        dataset="toy",
        source="table",
        rows=len(inter),
        users=inter["user_id"].nunique(),
        items=inter["item_id"].nunique(),
        item_rows=inter["item_id"].nunique(),
        items_with_metadata_title=0,
        rating_histogram={f"{k:g}": int(n) for k, n in inter["rating"].value_counts().sort_index().items()},
        reviews=0,
        timestamp_range=[int(inter["timestamp"].min()), int(inter["timestamp"].max())],
        time_source=time_source,
        ids_stripped={"user_id": 0, "item_id": 0},
        ids_merged={"user_id": 0, "item_id": 0},
        declared_counts=[],
        source_files=[],
        notes=[],
    ).write(out / "ingest.json")


def problems(out, stage) -> dict:
    """{(expectation, columns, condition): unexpected_count} of every failed expectation in the JSON result."""
    summary = read_json(out / "validation" / f"validate_{stage}.json")
    return {
        (e["expectation"], ",".join(e["columns"]), e["condition"]): e["unexpected_count"]
        for suite in summary["suites"]
        for e in suite["expectations"]
        if e["status"] == "failed"
    }


# --- suites -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["interactions", "kcore", "samples"])
def test_suite_json_loads_and_round_trips(name, params):
    import great_expectations as gx

    gx.get_context(mode="ephemeral")
    spec = load_suite_spec(name)
    suite = gx.ExpectationSuite(**json.loads(json.dumps(spec)))
    again = suite.to_json_dict()
    again.pop("id")
    again["meta"].pop("great_expectations_version", None)
    assert again == spec
    assert len(suite.expectations) == len(spec["expectations"])
    assert parameter_names(spec) <= set(suite_parameters(params, "ml100k"))


def test_bad_suite_file_is_a_config_error(tmp_path):
    (tmp_path / "samples.json").write_text("{not json")
    with pytest.raises(ConfigError, match="samples.json: not valid JSON"):
        load_suite_spec("samples", tmp_path)


def test_meta_rules_skip_and_select():
    spec = load_suite_spec("interactions")
    active, skipped = select_expectations(spec, {"time_source": "file_order"})
    assert [s["columns"] for s in skipped] == [["timestamp"]]
    assert "file_order" in skipped[0]["reason"]
    assert len(active["expectations"]) == len(spec["expectations"]) - 1
    _, skipped = select_expectations(load_suite_spec("kcore"), {"kcore_mode": "iterative"})
    assert skipped == []


# --- derived columns ------------------------------------------------------------------------------


def test_positions_break_timestamp_ties_by_file_order():
    inter = pd.DataFrame(
        {
            "user_id": ["a", "a", "a", "b"],
            "item_id": ["x", "y", "z", "x"],
            "rating": [1.0, 2.0, 3.0, 4.0],
            "timestamp": [5, 5, 1, 5],
        }
    )
    pos = chronological_positions(inter).set_index(["user_id", "item_id"])["pos"]
    assert pos.to_dict() == {("a", "z"): 0, ("a", "x"): 1, ("a", "y"): 2, ("b", "x"): 0}


def test_kcore_counts_items_only_in_iterative_mode():
    inter = toy_interactions()
    assert set(kcore_counts(inter, "user")["entity"]) == {"user"}
    counts = kcore_counts(inter, "iterative", users=["u0", "ghost"])
    users = counts[counts["entity"] == "user"].set_index("id")["interactions"]
    assert users.to_dict() == {"u0": 8, "ghost": 0}
    assert (counts["entity"] == "item").sum() == inter["item_id"].nunique()


def test_good_samples_derive_all_true():
    inter = toy_interactions()
    frame = samples_frame(build_samples(inter, HISTORY, PROFILE, THRESHOLD), inter, THRESHOLD)
    assert set(SAMPLE_CHECK_COLUMNS) <= set(frame.columns)
    for column in (
        "split_order_ok",
        "history_before_target",
        "history_labels_ok",
        "profile_before_history",
        "profile_labels_ok",
    ):
        assert frame[column].all(), column
    assert (frame["user_splits"] == 3).all()


def test_under_k_user_and_item_fail_the_kcore_suite():
    # Six users rate the same six items; "lonely" adds one rating of i0 and the only rating of "rare".
    pairs = [(f"u{u}", f"i{i}") for u in range(6) for i in range(6)] + [("lonely", "i0"), ("lonely", "rare")]
    inter = pd.DataFrame(pairs, columns=["user_id", "item_id"])
    counts = kcore_counts(inter, "iterative")
    params = {"k": K}
    [suite] = run_checks([Check("kcore", counts, "toy")], params, {"kcore_mode": "iterative"})
    failed = {e["condition"]: e for e in suite["expectations"] if e["status"] == "failed"}
    assert set(failed) == {"entity=='user'", "entity=='item'"}
    assert failed["entity=='user'"]["unexpected_count"] == 1
    assert failed["entity=='user'"]["examples"][0]["id"] == "lonely"
    assert failed["entity=='item'"]["unexpected_count"] == 1  # "rare" (i0 has plenty)
    assert failed["entity=='item'"]["examples"][0]["id"] == "rare"


# --- run_validation: interactions ----------------------------------------------------------------


def test_good_toy_dataset_passes_both_stages_quietly(tmp_path, capfd):
    params = toy_params(tmp_path)
    inter = toy_interactions()
    write_dataset(tmp_path / "toy", inter, build_samples(inter, HISTORY, PROFILE, THRESHOLD))
    capfd.readouterr()
    for stage in ("interactions", "samples"):
        summary = run_validation(params, "toy", stage)
        assert summary.success, summary
        assert (tmp_path / "toy" / "validation" / f"validate_{stage}.json").is_file()
        assert summary.data_docs is None
    assert capfd.readouterr() == ("", "")  # no GX progress bars or log lines


def _corrupt(inter, what):
    bad = inter.copy()
    if what == "null id":
        bad.loc[3, "user_id"] = None
    elif what == "rating 7":
        bad.loc[3, "rating"] = 7.0
    elif what == "timestamp 0":
        bad.loc[3, "timestamp"] = 0
    elif what == "duplicated row":
        bad = pd.concat([bad, bad.iloc[[3]]], ignore_index=True)
    return bad


@pytest.mark.parametrize(
    ("what", "expectation", "column", "count"),
    [
        ("null id", "expect_column_values_to_not_be_null", "user_id", 1),
        ("rating 7", "expect_column_values_to_be_between", "rating", 1),
        ("timestamp 0", "expect_column_values_to_be_between", "timestamp", 1),
        ("duplicated row", "expect_compound_columns_to_be_unique", "user_id,item_id,timestamp", 2),
    ],
)
def test_bad_interactions_fail_the_right_expectation(tmp_path, what, expectation, column, count):
    params = toy_params(tmp_path)
    inter = toy_interactions()
    write_dataset(tmp_path / "toy", _corrupt(inter, what))
    with pytest.raises(ValidationFailed) as caught:
        run_validation(params, "toy", "interactions")
    assert problems(tmp_path / "toy", "interactions") == {(expectation, column, None): count}
    report = str(caught.value)
    assert f"FAILED {expectation} on " in report
    assert f"{count} of {len(inter) + (what == 'duplicated row'):,} rows" in report
    assert "record 3: user_id=" in report  # the offending row, with its values
    assert str(tmp_path / "toy" / "validation" / "validate_interactions.json") in report


def test_file_order_timestamps_skip_the_plausibility_check(tmp_path):
    params = toy_params(tmp_path)
    inter = toy_interactions()
    inter["timestamp"] = range(len(inter))  # ordinal, as for ML-1M without timestamps
    write_dataset(tmp_path / "toy", inter, time_source="file_order")
    summary = run_validation(params, "toy", "interactions")
    [skipped] = summary.suites[0]["skipped"]
    assert skipped["columns"] == ["timestamp"] and "file_order" in skipped["reason"]
    assert any("file order" in note for note in summary.notes)


@pytest.mark.parametrize("drop", [True, False])
def test_duplicates_only_warn_for_datasets_that_allow_them(tmp_path, drop):
    params = toy_params(tmp_path, allow_duplicates=["toy"], drop_duplicates=drop)
    inter = toy_interactions()
    write_dataset(
        tmp_path / "toy",
        _corrupt(inter, "duplicated row"),
        build_samples(_corrupt(inter, "duplicated row") if not drop else inter, HISTORY, PROFILE, THRESHOLD),
    )
    summary = run_validation(params, "toy", "interactions")
    [warned] = [e for e in summary.suites[0]["expectations"] if e["status"] == "warning"]
    assert warned["expectation"] == "expect_compound_columns_to_be_unique"
    assert warned["unexpected_count"] == 2
    # The repeat is u3's last item: with drop=False the test target is its second occurrence.
    assert run_validation(params, "toy", "samples").success


def test_repeated_key_targets_take_successive_occurrences():
    inter = pd.DataFrame(
        {
            "user_id": ["a"] * 4,
            "item_id": ["x", "y", "y", "y"],
            "rating": [5.0, 1.0, 5.0, 2.0],
            "timestamp": [1, 2, 2, 2],
        }
    )
    samples = build_samples(inter, HISTORY, PROFILE, THRESHOLD)
    frame = samples_frame(samples, inter, THRESHOLD)
    assert frame["target_pos"].tolist() == [1, 2, 3]
    assert frame["observed_rating"].tolist() == frame["target_rating"].tolist() == [1.0, 5.0, 2.0]
    assert frame["split_order_ok"].all() and frame["history_before_target"].all()


def test_k_above_every_user_empties_the_kcore(tmp_path):
    params = toy_params(tmp_path, kcore={"k": 50, "mode": "iterative"})
    write_dataset(tmp_path / "toy", toy_interactions())
    with pytest.raises(
        ValidationFailed, match=r"FAILED expect_table_row_count_to_be_between on table \(min_value=1\): observed 0"
    ):
        run_validation(params, "toy", "interactions")


def test_missing_input_names_the_file_and_the_fix(tmp_path):
    from reasoningrec.errors import DataError

    with pytest.raises(DataError, match=r"interactions.parquet: not found: run `reasoningrec ingest -d toy`"):
        run_validation(toy_params(tmp_path), "toy", "interactions")


# --- run_validation: samples ----------------------------------------------------------------------


def _mutate(samples: pd.DataFrame, inter: pd.DataFrame, what: str) -> pd.DataFrame:
    bad = samples.copy()
    row = bad.index[(bad["user_id"] == "u1") & (bad["split"] == "train")][0]
    if what == "history after target":
        test_target = bad.loc[(bad["user_id"] == "u1") & (bad["split"] == "test"), "target_item"].iloc[0]
        bad.at[row, "history_items"] = [*bad.at[row, "history_items"][:-1], test_target]
    elif what == "wrong label":
        bad.loc[row, "label"] = 1 - bad.loc[row, "label"]
    elif what == "missing split":
        bad = bad[~((bad["user_id"] == "u2") & (bad["split"] == "test"))]
    elif what == "profile inside window":
        valid = bad.index[(bad["user_id"] == "u1") & (bad["split"] == "valid")][0]
        item, label = bad.at[valid, "history_items"][1], bad.at[valid, "history_labels"][1]
        bad.at[valid, "profile_items"] = [bad.at[valid, "profile_items"][0], item]
        bad.at[valid, "profile_labels"] = [bad.at[valid, "profile_labels"][0], label]
    elif what == "user under k":
        few = inter[inter["user_id"] == "u9"]
        bad = pd.concat([bad, build_samples(few, HISTORY, PROFILE, THRESHOLD)], ignore_index=True)
    return bad.reset_index(drop=True)


@pytest.mark.parametrize(
    ("what", "expected"),
    [
        ("history after target", {("expect_column_values_to_be_in_set", "history_before_target", None): 1}),
        ("wrong label", {("expect_column_values_to_be_between", "target_rating", "label==0"): 1}),
        ("missing split", {("expect_column_values_to_be_in_set", "user_splits", None): 2}),
        ("profile inside window", {("expect_column_values_to_be_in_set", "profile_before_history", None): 1}),
        ("user under k", {("expect_column_values_to_be_between", "interactions", "entity=='user'"): 1}),
    ],
)
def test_bad_samples_fail_the_right_expectation(tmp_path, what, expected):
    params = toy_params(tmp_path)
    inter = toy_interactions()
    # u9 has 4 ratings (< k = 5): the k-core drops it, so no sample may use it.
    inter = pd.concat([inter, toy_interactions(users=10, per_user=4).query("user_id == 'u9'")], ignore_index=True)
    good = build_samples(inter[inter["user_id"] != "u9"], HISTORY, PROFILE, THRESHOLD)
    write_dataset(tmp_path / "toy", inter, _mutate(good, inter, what))
    with pytest.raises(ValidationFailed) as caught:
        run_validation(params, "toy", "samples")
    assert problems(tmp_path / "toy", "samples") == expected
    (expectation, column, _), count = next(iter(expected.items()))
    report = str(caught.value)
    assert f"FAILED {expectation} on column {column!r}" in report
    assert f"{count} of " in report
    offender = {
        "user under k": "\n      entity='user', id='u9', interactions=0, before_kcore=4\n",
        "missing split": "user_id='u2', split='train'",
    }.get(what, "user_id='u1'")
    assert offender in report


def test_swapped_targets_break_the_split_order(tmp_path):
    params = toy_params(tmp_path)
    inter = toy_interactions()
    samples = build_samples(inter, HISTORY, PROFILE, THRESHOLD)
    u0 = samples.index[samples["user_id"] == "u0"]
    target = ["target_item", "target_rating", "target_timestamp", "label"]
    for column in target:
        samples.loc[u0[[0, 2]], column] = samples.loc[u0[[2, 0]], column].to_numpy()
    write_dataset(tmp_path / "toy", inter, samples)
    with pytest.raises(ValidationFailed, match="split_order_ok"):
        run_validation(params, "toy", "samples")
    assert problems(tmp_path / "toy", "samples")[("expect_column_values_to_be_in_set", "split_order_ok", None)] == 3


# --- real data ------------------------------------------------------------------------------------


@pytest.mark.data
def test_real_ml100k_passes_every_suite(tmp_path):
    raw = pd.read_csv(
        data_file("ml-100k/u.data"),
        sep="\t",
        names=["user_id", "item_id", "rating", "timestamp"],
        dtype={"user_id": str, "item_id": str, "rating": "float64", "timestamp": "int64"},
    )
    raw["review"] = None
    params = parse_params(
        {
            "paths": {"work_dir": str(tmp_path)},
            "datasets": {
                "ml100k": {
                    "source": "movielens100k",
                    "path": "ml-100k",
                    "kcore": {"k": 20, "mode": "iterative"},
                    "history_len": 10,
                }
            },
        }
    )
    out = tmp_path / "ml100k"
    write_dataset(out, raw)
    try:
        from reasoningrec.data.prepare import run_prepare
    except ImportError:
        run_prepare = None
    if run_prepare is not None:
        run_prepare(params, "ml100k", out)
    else:
        write_dataset(out, raw, build_samples(raw, 10, params.prepare.profile_items, params.prepare.like_threshold))
    for stage in ("interactions", "samples"):
        summary = run_validation(params, "ml100k", stage)
        assert summary.success, summary
        assert all(s["counts"]["skipped"] == 0 for s in summary.suites)  # iterative: items checked too
    samples = summary.suites[0]
    assert samples["suite"] == "samples" and samples["rows"] == len(pd.read_parquet(out / "samples.parquet")) > 2000
    docs = out / "validation" / "data_docs_samples"
    assert (docs / "index.html").is_file()
    assert len(list(docs.glob("validations/samples/**/*.html"))) == 1


@pytest.mark.data
def test_real_paper_beauty_with_kept_duplicates_passes(shared_data, params, tmp_path, monkeypatch):
    """The paper's Beauty keeps repeated (user, item, timestamp) rows: a warning, and samples still check out."""
    from reasoningrec.config import DATA_DIR_ENV
    from reasoningrec.data.ingest import run_ingest
    from reasoningrec.data.prepare import run_prepare

    monkeypatch.setenv(DATA_DIR_ENV, str(shared_data))
    params = params.model_copy(update={"validate_": params.validate_.model_copy(update={"data_docs": False})})
    run_ingest(params, "beauty", tmp_path)
    run_prepare(params, "beauty", tmp_path)
    inter = run_validation(params, "beauty", "interactions", tmp_path)
    [warned] = [e for e in inter.suites[0]["expectations"] if e["status"] != "passed"]
    assert warned["status"] == "warning" and warned["unexpected_count"] > 1000  # 1,110 rows repeat a key
    samples = run_validation(params, "beauty", "samples", tmp_path)
    assert samples.success and samples.suites[0]["counts"]["passed"] == len(samples.suites[0]["expectations"])


# --- CLI ------------------------------------------------------------------------------------------


def test_cli_exits_2_with_the_report_on_failure(tmp_path, monkeypatch, capsys):
    from reasoningrec.cli import main

    config = toy_params(tmp_path)
    path = tmp_path / "params.yaml"
    path.write_text(json.dumps(config.model_dump(mode="json", by_alias=True)))
    write_dataset(tmp_path / "toy", _corrupt(toy_interactions(), "rating 7"))
    # Hand-made files have no ingest record: --allow-stale validates them anyway.
    monkeypatch.setattr(sys, "argv", ["reasoningrec", "validate", "-d", "toy", "--params", str(path), "--allow-stale"])
    with pytest.raises(SystemExit) as caught:
        main()
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: validation FAILED")
    assert "FAILED expect_column_values_to_be_between on column 'rating'" in err

    write_dataset(tmp_path / "toy", toy_interactions())
    main()  # passes: no SystemExit
    assert "interactions 7/7 passed" in capsys.readouterr().out


# --- validation at scale: screened rows + a sample ------------------------------------------------


def test_screened_run_counts_every_defect_like_a_whole_table_run():
    """Above gx_max_rows GX sees the screened rows plus a sample; the counts stay the whole table's."""
    inter = toy_interactions(users=40, per_user=8)
    bad = _corrupt(_corrupt(inter, "rating 7"), "duplicated row")
    bad.loc[100, "timestamp"] = 0
    bad.loc[200, "item_id"] = None
    from reasoningrec.validation_frames import interactions_of

    frame = interactions_of(bad).frame()
    parameters = suite_parameters(toy_params("unused"), "toy")
    flags = {"time_source": "timestamp", "duplicates_allowed": False}
    [whole] = run_checks([Check("interactions", frame, "toy")], parameters, flags)
    [screened] = run_checks([Check("interactions", frame, "toy")], parameters, flags, max_rows=100, sample_rows=50)
    assert whole["scope"]["mode"] == "all rows"
    assert screened["scope"]["mode"] == "screened + sample" and screened["scope"]["gx_rows"] < len(frame)
    # rating 7 in row 3 and its appended repeat, timestamp 0 in row 100, the null item in row 200
    assert screened["scope"]["screened_rows"] == 4
    assert screened["success"] is whole["success"] is False
    for a, b in zip(whole["expectations"], screened["expectations"], strict=True):
        assert (a["status"], a["unexpected_count"], a["element_count"]) == (
            b["status"],
            b["unexpected_count"],
            b["element_count"],
        )
        assert [e.get("record") for e in a.get("examples", [])] == [e.get("record") for e in b.get("examples", [])]


def test_a_suite_without_screens_goes_to_gx_whole():
    from reasoningrec.validation_screen import gx_rows

    frame = pd.DataFrame({"x": range(1000)})
    expectations = [{"type": "expect_column_mean_to_be_between", "kwargs": {"column": "x", "min_value": 0}}]
    seen, scope = gx_rows(frame, expectations, {}, max_rows=10, sample_rows=5)
    assert len(seen) == 1000 and "no vectorised screen" in scope["reason"]


@pytest.mark.data
def test_real_amazon_beauty_with_dropped_repeats_passes(shared_data, params, tmp_path, monkeypatch):
    """Amazon 2018 Beauty repeats (user, item, timestamp) with other ratings; prepare keeps the first of
    each, so the samples are checked against that timeline (a repeat's rating is not the target's)."""
    from reasoningrec.config import DATA_DIR_ENV
    from reasoningrec.data.ingest import run_ingest
    from reasoningrec.data.prepare import run_prepare

    monkeypatch.setenv(DATA_DIR_ENV, str(shared_data))
    params = params.model_copy(update={"validate_": params.validate_.model_copy(update={"data_docs": False})})
    run_ingest(params, "amazon2018-beauty", tmp_path)
    run_prepare(params, "amazon2018-beauty", tmp_path)
    summary = run_validation(params, "amazon2018-beauty", "samples", tmp_path)
    assert summary.success and "1,108 repeated" in summary.notes[0]
