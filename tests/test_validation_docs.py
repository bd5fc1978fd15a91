"""Data Docs of the validation stages: a history of named runs and assets, pruned, loading nothing remote."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from reasoningrec import validation_docs
from reasoningrec.offline_html import remote_resources
from reasoningrec.validation_docs import DataDocs, prune


def index_rows(site: Path) -> list[dict[str, str]]:
    """The validation rows of a Data Docs index (GX writes them as data of a bootstrap-table)."""
    text = (site / "index.html").read_text(encoding="utf-8")
    data = re.search(r"data: \[(.*?)\],\s*toolbar: '#section-1-content-block-2-1-body-table-toolbar'", text, re.S)
    rows = re.findall(r"\{'validation_success'.*?'asset_name': '[^']*'\}", data.group(1), re.S)
    return [
        {key: re.search(rf"'{key}': '([^']*)'", row).group(1) for key in ("run_name", "asset_name", "run_time")}
        for row in rows
    ]


def test_run_names_say_dataset_stage_and_time():
    when = dt.datetime(2026, 12, 1, 11, 28, 0, 839955, tzinfo=dt.UTC)
    docs = DataDocs.for_stage(Path("/w/fashion/validation"), "fashion", "samples", when)
    assert docs.run_name == "fashion-samples-20261201T112800Z"
    assert docs.site == Path("/w/fashion/validation/data_docs_samples")
    assert docs.results == Path("/w/fashion/validation/gx_results_samples")


def test_prune_keeps_the_newest_runs_of_every_suite(tmp_path):
    for suite in ("interactions", "kcore"):
        for run, stamp in (
            ("d-s-1", "20261201T000001.000000Z"),
            ("d-s-2", "20261201T000002.000000Z"),
            ("d-s-2", "20261201T000002.500000Z"),
            ("d-s-3", "20261201T000003.000000Z"),
        ):
            folder = tmp_path / suite / run / stamp
            folder.mkdir(parents=True)
            (folder / "x.json").write_text("{}")
    assert prune(tmp_path, keep_runs=2) == ["d-s-1/20261201T000001.000000Z", "d-s-2/20261201T000002.000000Z"]
    for suite in ("interactions", "kcore"):
        left = sorted(p.relative_to(tmp_path / suite).as_posix() for p in (tmp_path / suite).glob("*/*"))
        assert left == ["d-s-2/20261201T000002.500000Z", "d-s-3/20261201T000003.000000Z"]
    assert not (tmp_path / "interactions" / "d-s-1").exists()  # an emptied run folder goes too
    assert prune(tmp_path, keep_runs=2) == []


@pytest.mark.data
def test_every_run_stays_browsable_with_its_name_and_asset_and_no_network(
    shared_data, slice_params, tmp_path, monkeypatch
):
    from reasoningrec.config import DATA_DIR_ENV
    from reasoningrec.data.ingest import run_ingest
    from reasoningrec.validation import run_validation

    monkeypatch.setenv(DATA_DIR_ENV, str(shared_data))
    params = slice_params.model_copy(
        update={"validate_": slice_params.validate_.model_copy(update={"data_docs": True})}
    )
    run_ingest(params, "fashion", tmp_path)
    summaries = [run_validation(params, "fashion", "interactions", tmp_path) for _ in range(3)]
    site = tmp_path / "validation" / "data_docs_interactions"
    assert all(s.data_docs == str(site / "index.html") for s in summaries)
    assert all(re.fullmatch(r"fashion-interactions-\d{8}T\d{6}Z", s.data_docs_run) for s in summaries)

    rows = index_rows(site)
    assert len(rows) == 3 * 2  # three runs, two suites each (interactions, kcore), newest first
    assert {r["run_name"] for r in rows} == {s.data_docs_run for s in summaries}
    assert [r["run_time"] for r in rows] == sorted((r["run_time"] for r in rows), reverse=True)
    assert {r["asset_name"] for r in rows} == {
        "fashion/interactions.parquet",
        "fashion/interactions.parquet (k-core counts)",
    }
    pages = sorted(site.glob("validations/*/*/*/*.html"))
    assert len(pages) == 6
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert "Data asset: fashion/interactions.parquet" in text and "__none__" not in text, page
    for path in [*site.rglob("*.html"), *(site / "static").rglob("*.css")]:
        assert remote_resources(path.read_text(encoding="utf-8")) == [], path

    # History is kept up to KEEP_RUNS runs: older runs leave the results and the site.
    monkeypatch.setattr(validation_docs, "KEEP_RUNS", 2)
    latest = run_validation(params, "fashion", "interactions", tmp_path)
    rows = index_rows(site)
    assert len(rows) == 2 * 2 and len(list(site.glob("validations/*/*/*/*.html"))) == 4
    assert latest.data_docs_run in {r["run_name"] for r in rows}
    assert len(list((tmp_path / "validation" / "gx_results_interactions").glob("*/*/*/*.json"))) == 4
