"""The ``reasoningrec grid`` command line: settings through the config loader (--params, --overlay,
--set), list options comma-separated or repeated, clear errors."""

from __future__ import annotations

from grid_helpers import PAPER, PARAMS
from typer.testing import CliRunner

from reasoningrec.cli import app


def _dry(*args: str):
    return CliRunner().invoke(app, ["grid", "--params", str(PARAMS), "--dry-run", *args])


def test_overlay_and_set_reach_the_grid_through_the_loader(tmp_path):
    work = f"paths.work_dir={tmp_path / 'work'}"
    result = _dry(
        "--overlay",
        str(PAPER),
        "--set",
        work,
        "--datasets",
        "beauty",
        "--methods",
        "tallrec,sasrec",
        "--k",
        "64",
        "--k",
        "128",
        "--seeds",
        "0 1",
    )
    assert result.exit_code == 0, result.output
    calls = [line.split()[1] for line in result.output.splitlines()]
    assert calls == [
        "ingest",
        "validate_interactions",
        "prepare",
        "validate_samples",
        "import_texts",
        "vocabulary",
        "records",
        "baselines",
        "experiment-tallrec-k128-s0",
        "experiment-tallrec-k128-s1",
        "experiment-tallrec-k64-s0",
        "experiment-tallrec-k64-s1",
        "compare",
    ]
    # The same K without the overlay: params.yaml's slice has records for K = 16 only.
    result = _dry("--set", work, "--datasets", "beauty", "--methods", "tallrec", "--k", "64", "--seeds", "0")
    assert result.exit_code != 0 and "K=[64] not among records.k_shots [16]" in str(result.exception)
    # --set wins over the overlay.
    result = _dry(
        "--overlay",
        str(PAPER),
        "--set",
        work,
        "--set",
        "records.k_shots=[16]",
        "--datasets",
        "beauty",
        "--methods",
        "tallrec",
        "--k",
        "64",
        "--seeds",
        "0",
    )
    assert "records.k_shots [16]" in str(result.exception)


def test_bad_settings_and_values_are_named():
    result = _dry("--set", "train.epochs=-1")
    assert result.exit_code != 0 and "train.epochs" in str(result.exception)
    result = _dry("--seeds", "zero")
    assert result.exit_code == 2 and "expected integers" in result.output
