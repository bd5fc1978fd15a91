"""Every HTML page the product writes, opened from file:// in headless Chromium with the network blocked:
nothing is requested from outside, no script fails, the styles apply and the page is not blank.

Skipped without Chromium (browser_support.chromium); screenshots go to $REASONINGREC_SCREENSHOTS when set.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import yaml
from browser_support import Browser, blank_share, chromium
from dvc_support import BIN, make_project, run

REPO = Path(__file__).resolve().parents[1]
BOOTSTRAP_FONT = "-apple-system"  # the head of Bootstrap 4's font stack (the browser default is a serif)

PROBE = """({
  font: getComputedStyle(document.body).fontFamily,
  height: document.documentElement.scrollHeight,
  navbar: document.querySelector('.navbar') ? getComputedStyle(document.querySelector('.navbar')).display : null,
  tableRows: document.querySelectorAll('table tbody tr').length,
  iconFont: document.fonts.check('900 16px "Font Awesome 6 Free"'),
  iconFamily: document.querySelector('.fas') ? getComputedStyle(document.querySelector('.fas')).fontFamily : null,
  images: [...document.images].map(i => ({src: i.getAttribute('src').slice(0, 40), width: i.naturalWidth})),
  title: document.title,
})"""


@pytest.fixture(scope="module")
def browser():
    chromium()
    with Browser() as instance:
        yield instance


def _clean(load) -> None:
    assert load.remote == [], load.remote
    assert load.failed == [], load.failed
    assert load.errors == [], load.errors
    assert blank_share(load.screenshot) < 0.97, f"{load.screenshot} is (nearly) blank"
    assert all(image["width"] > 0 for image in load.facts["images"]), load.facts["images"]


def _gx_site(root: Path, shared_data: Path, slice_params, runs: int) -> Path:
    import os

    from reasoningrec.config import DATA_DIR_ENV
    from reasoningrec.data.ingest import run_ingest
    from reasoningrec.validation import run_validation

    os.environ[DATA_DIR_ENV] = str(shared_data)
    params = slice_params.model_copy(
        update={"validate_": slice_params.validate_.model_copy(update={"data_docs": True})}
    )
    run_ingest(params, "fashion", root)
    for _ in range(runs):
        run_validation(params, "fashion", "interactions", root)
    return root / "validation" / "data_docs_interactions"


@pytest.mark.data
def test_data_docs_render_offline(browser, shared_data, slice_params, tmp_path, monkeypatch):
    monkeypatch.delenv("REASONINGREC_DATA_DIR", raising=False)
    site = _gx_site(tmp_path, shared_data, slice_params, runs=2)
    index = browser.load(site / "index.html", PROBE, screenshot=tmp_path / "shots" / "gx-index.png")
    _clean(index)
    facts = index.facts
    assert facts["font"].startswith(BOOTSTRAP_FONT) and facts["navbar"] == "flex"  # Bootstrap's CSS applied
    assert facts["tableRows"] == 2 * 2 + 2  # bootstrap-table (jQuery) drew the runs and the two suites
    assert facts["iconFont"] and "Font Awesome" in facts["iconFamily"]  # the status icons have their font
    assert facts["images"] and facts["images"][0]["src"].endswith("logo-long.png")

    page = next(site.glob("validations/interactions/*/*/*.html"))
    result = browser.load(page, PROBE, screenshot=tmp_path / "shots" / "gx-validation.png")
    _clean(result)
    assert result.facts["font"].startswith(BOOTSTRAP_FONT) and result.facts["tableRows"] >= 7
    assert result.facts["height"] > 1000  # every expectation's table is there
    suite = browser.load(
        site / "expectations" / "interactions.html", PROBE, screenshot=tmp_path / "shots" / "gx-suite.png"
    )
    _clean(suite)


@pytest.mark.data
def test_data_docs_as_gx_writes_them_fail_these_checks(browser, shared_data, slice_params, tmp_path, monkeypatch):
    """The control: without the rewrite, the same page asks the network and renders unstyled and empty."""
    from reasoningrec import offline_html

    monkeypatch.delenv("REASONINGREC_DATA_DIR", raising=False)
    monkeypatch.setattr(offline_html, "make_site_offline", lambda site: [])
    site = _gx_site(tmp_path, shared_data, slice_params, runs=1)
    index = browser.load(site / "index.html", PROBE, screenshot=tmp_path / "shots" / "gx-index-cdn.png")
    assert any("bootstrapcdn.com" in url for url in index.remote) and index.failed
    assert not index.facts["font"].startswith(BOOTSTRAP_FONT)
    assert index.facts["tableRows"] == 0 and index.facts["navbar"] == "block"
    assert any("$ is not defined" in error or "jQuery" in error for error in index.errors), index.errors


def test_dvc_plots_page_renders_offline(browser, tmp_path):
    from reasoningrec.metrics import write_curves
    from reasoningrec.report.cells import Cell, RunRecord
    from reasoningrec.report.plots import auc_vs_k_png

    project, env = make_project(tmp_path / "project", tmp_path / "no-data", tmp_path / "no-model")
    stages = yaml.safe_load((project / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    work = yaml.safe_load((project / "params.yaml").read_text(encoding="utf-8"))["paths"]["work_dir"]
    plots = [p.replace("${paths.work_dir}", work) for stage in stages.values() for p in stage.get("plots", [])]
    assert plots and all(p.endswith(".png") for p in plots)
    rng = random.Random(0)
    labels = [int(rng.random() < 0.3) for _ in range(200)]
    scores = [min(1.0, max(0.0, rng.gauss(0.6 if y else 0.4, 0.2))) for y in labels]
    for folder in {Path(p).parent for p in plots if Path(p).name.startswith("test_")}:
        write_curves(labels, scores, project / folder, prefix="test_")  # the experiment stage's own plotting
    cells = {
        ("fashion", "reasoningrec", k): Cell(
            "fashion",
            "reasoningrec",
            k,
            [RunRecord(f"r{k}", "fashion", "reasoningrec", k, "42", {"test_auc": 0.6 + int(k) / 1000}, {}, {})],
        )
        for k in ("8", "16")
    }
    for path in (p for p in plots if p.endswith("auc_vs_k.png")):
        (project / path).parent.mkdir(parents=True, exist_ok=True)
        (project / path).write_bytes(auc_vs_k_png("fashion", cells))
    run([str(BIN / "dvc"), "plots", "show"], project, env)
    load = browser.load(project / "dvc_plots" / "index.html", PROBE, screenshot=tmp_path / "shots" / "dvc-plots.png")
    _clean(load)
    assert load.facts["title"] == "ReasoningRec plots (DVC)"  # the template of .dvc/config, not DVC's own
    assert len(load.facts["images"]) == len(plots)


def test_results_report_renders_offline(browser, tmp_path):
    page = REPO / "docs" / "results.html"
    if not page.is_file():
        pytest.skip("docs/results.html not generated (reasoningrec report)")
    load = browser.load(page, PROBE, screenshot=tmp_path / "shots" / "results.png")
    _clean(load)
    assert load.facts["tableRows"] > 10 and load.facts["images"]
    assert load.facts["font"].startswith("system-ui")  # the page's own stylesheet
