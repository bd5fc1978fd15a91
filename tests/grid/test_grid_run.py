"""``reasoningrec grid`` end to end on a real Fashion slice (the paper authors' data, 16 users) with the
tiny model: every call through the completion rule, so a second call runs nothing and another
``--set`` runs again exactly the calls whose settings it changes; failures stay with their jobs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from grid_helpers import PARAMS, slice_overlay
from typer.testing import CliRunner

from reasoningrec.cli import app
from reasoningrec.io import read_json

METHODS = "reasoningrec,zeroshot-vanilla,sasrec"
JOBS = {"fashion/baselines", "fashion/experiment-reasoningrec-k4-s0", "fashion/experiment-zeroshot-vanilla-k0-s0"}
DATA = ["ingest", "validate_interactions", "prepare", "validate_samples", "import_texts", "vocabulary", "records"]


def grid(overlay: Path, *args: str):
    result = CliRunner().invoke(
        app,
        [
            "grid",
            "--params",
            str(PARAMS),
            "--overlay",
            str(overlay),
            "--methods",
            METHODS,
            "--k",
            "4",
            "--seeds",
            "0",
            *args,
        ],
        catch_exceptions=False,
    )
    return result


def records(work: Path) -> dict[str, int]:
    """Call -> mtime of its completion record."""
    return {p.stem: p.stat().st_mtime_ns for p in (work / "work" / "fashion" / ".completion").glob("*.json")}


@pytest.fixture(scope="module")
def first_grid(shared_data, tiny_model_dir, tmp_path_factory):
    """The first grid call (one worker process) into a fresh work folder."""
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("REASONINGREC_DATA_DIR", str(shared_data))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    root = tmp_path_factory.mktemp("grid")
    overlay = slice_overlay(root / "slice.yaml", root, tiny_model_dir)
    result = grid(overlay, "--workers", "1")
    yield root, overlay, result
    monkeypatch.undo()


@pytest.fixture
def copy_of_first(first_grid, tiny_model_dir, tmp_path):
    """The first grid's work folder copied (records stay valid: they name files relative to it)."""
    root, _, _ = first_grid
    shutil.copytree(root / "work", tmp_path / "work", symlinks=True)
    return tmp_path, slice_overlay(tmp_path / "slice.yaml", tmp_path, tiny_model_dir)


def test_first_call_runs_the_data_stages_then_every_job(first_grid):
    root, _, result = first_grid
    assert result.exit_code == 0, result.output
    status = read_json(root / "work" / ".grid" / "status.json")
    assert set(status["datasets"]["fashion"]["calls"]) == {*DATA, "compare"}
    assert all(step.startswith("ran in") for step in status["datasets"]["fashion"]["calls"].values())
    assert set(status["jobs"]) == JOBS and all(r["status"] == "ok" and r["ran"] for r in status["jobs"].values())
    assert status["summary"]["ran"] == 3 and status["summary"]["failed"] == []
    assert set(records(root)) == {*DATA, "compare", *(j.split("/")[1] for j in JOBS)}
    assert 0 <= status["jobs"]["fashion/experiment-reasoningrec-k4-s0"]["metrics"]["test_auc"] <= 1
    log = Path(status["jobs"]["fashion/baselines"]["log"])
    assert log == root / "work" / ".grid" / "logs" / "fashion" / "baselines.log" and log.stat().st_size > 0
    assert {"torch", "pandas"} <= set(read_json(root / "work" / ".grid" / "imports.json"))


def test_a_second_call_runs_nothing_and_a_set_reruns_exactly_the_calls_it_changes(copy_of_first):
    root, overlay = copy_of_first
    before = records(root)
    result = grid(overlay, "--workers", "0")
    assert result.exit_code == 0, result.output
    assert '"ran": 0' in result.output and records(root) == before  # nothing ran, no record rewritten

    result = grid(overlay, "--workers", "0", "--set", "baselines.hidden=16")  # only the baselines read it
    assert result.exit_code == 0, result.output
    after = records(root)
    assert {c for c in after if after[c] != before[c]} == {"baselines"}

    result = grid(overlay, "--workers", "0", "--set", "baselines.hidden=16", "--set", "evaluate.explain_limit=1")
    assert result.exit_code == 0, result.output
    again = records(root)
    assert {c for c in again if again[c] != after[c]} == {
        "experiment-reasoningrec-k4-s0",
        "experiment-zeroshot-vanilla-k0-s0",
        "compare",
    }
    explained = read_json(root / "work" / "fashion" / "runs" / "reasoningrec-k4-s0" / "metrics.json")
    assert explained["metrics"]["bertscore_pairs"] == 1


def test_dry_run_says_what_would_run_and_why_and_runs_nothing(copy_of_first):
    root, overlay = copy_of_first
    before = records(root)
    result = grid(overlay, "--dry-run", "--set", "records.valid_size=4")
    assert result.exit_code == 0, result.output
    verdicts = {line.split()[1]: " ".join(line.split()[2:]) for line in result.output.splitlines()}
    assert verdicts["prepare"] == "up to date" and verdicts["baselines"] == "up to date"
    assert verdicts["records"] == "runs: its settings changed since it last ran"
    assert verdicts["experiment-reasoningrec-k4-s0"] == "runs: after records"
    assert verdicts["compare"].startswith("runs: after experiment-")
    assert records(root) == before


def test_a_failing_job_does_not_stop_the_others(copy_of_first):
    """The fine-tuned run fails (LoRA finds no such module); the zero-shot run and the baselines, whose
    settings changed too, run beside it. The failed run leaves no completion record: the next call
    runs it again."""
    root, overlay = copy_of_first
    result = grid(
        overlay, "--workers", "1", "--set", "train.target_modules=[no_such_proj]", "--set", "baselines.hidden=16"
    )
    assert result.exit_code == 1, result.output
    status = read_json(root / "work" / ".grid" / "status.json")
    assert status["summary"]["failed"] == ["fashion/experiment-reasoningrec-k4-s0"]
    assert "no_such_proj" in status["jobs"]["fashion/experiment-reasoningrec-k4-s0"]["error"]
    for job in ("fashion/baselines", "fashion/experiment-zeroshot-vanilla-k0-s0"):
        assert status["jobs"][job]["status"] == "ok" and status["jobs"][job]["ran"]
    assert status["datasets"]["fashion"]["calls"]["compare"].startswith("not run")
    assert "experiment-reasoningrec-k4-s0" not in records(root)
    assert "Traceback" in Path(status["jobs"]["fashion/experiment-reasoningrec-k4-s0"]["log"]).read_text()
    again = grid(overlay, "--dry-run", "--set", "train.target_modules=[no_such_proj]", "--set", "baselines.hidden=16")
    verdicts = {line.split()[1]: " ".join(line.split()[2:]) for line in again.output.splitlines()}
    assert verdicts["experiment-reasoningrec-k4-s0"] == "runs: never completed (no completion record)"
    assert verdicts["experiment-zeroshot-vanilla-k0-s0"] == verdicts["baselines"] == "up to date"


def test_a_dataset_whose_data_fails_is_reported_and_the_others_go_on(copy_of_first):
    root, overlay = copy_of_first
    result = grid(
        overlay,
        "--workers",
        "0",
        "--datasets",
        "broken,fashion",
        "--set",
        "datasets.broken={source: table, path: missing/ratings.csv}",
    )
    assert result.exit_code == 1, result.output
    status = read_json(root / "work" / ".grid" / "status.json")
    assert status["summary"]["datasets_failed"] == ["broken"] and "missing" in status["datasets"]["broken"]["error"]
    assert status["summary"]["jobs"] == 3 and status["summary"]["up_to_date"] == 3  # fashion's, all done


def test_only_the_llm_text_stages_run_with_the_synthesis_settings(tmp_path, monkeypatch):
    """--synthesis-batch-size: the describe/profile/reason calls get their own llm.batch_size; every
    other call (records, the experiments, whose records depend on llm.batch_size) the grid's."""
    from grid_helpers import PAPER

    from reasoningrec.completion import Outcome, Verdict
    from reasoningrec.config import read_params
    from reasoningrec.grid import GridOptions, run, run_grid

    work = {"paths": {"work_dir": str(tmp_path / "work")}}
    params = read_params(PARAMS, [PAPER], overrides=work)
    synthesis = read_params(PARAMS, [PAPER], overrides={**work, "llm": {"batch_size": 128}})
    seen = []

    def execute(used, call, **options):
        seen.append((call.name, used.llm.batch_size))
        return Outcome(call, True, {}, 0.0, Path())

    monkeypatch.setattr(run, "execute", execute)
    monkeypatch.setattr(run, "check", lambda used, call: Verdict(True, "up to date"))  # no job to run
    options = GridOptions(datasets=("ml100k",), methods=("tallrec",), k_shots=(64,), seeds=(0,))
    status = run_grid(params, options, synthesis_params=synthesis, say=lambda line: None)
    assert status["summary"]["up_to_date"] == 1
    assert seen == [
        ("ingest", 8),
        ("validate_interactions", 8),
        ("prepare", 8),
        ("validate_samples", 8),
        ("describe", 128),
        ("profile", 128),
        ("reason", 128),
        ("vocabulary", 8),
        ("records", 8),
        ("experiment-tallrec-k64-s0", 8),
        ("compare", 8),
    ]
