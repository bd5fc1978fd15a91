"""dvc.yaml: in step with the stage table and params.yaml; a real `dvc repro` is incremental."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from reasoningrec.config import read_params
from reasoningrec.orchestration.stages import STAGES, entry_source, synthesis_plan

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# The repro test runs these (validate_samples would only add one more GX run).
REPRO_STAGES = ("ingest", "validate_interactions", "prepare")
# dvc.yaml stage group -> the stage of reasoningrec.orchestration.stages it runs
GROUP_STAGE = {"import_texts": "import_texts", "import_descriptions": "import_texts"}


@pytest.fixture(scope="module")
def dvc_stages():
    """Every stage of the project's dvc.yaml, resolved by DVC itself (foreach/matrix expanded)."""
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    repo_mod = pytest.importorskip("dvc.repo")
    if not (REPO / ".dvc").is_dir():
        pytest.skip("the project is not DVC-initialised (run `dvc init`)")
    repo = repo_mod.Repo(str(REPO))
    try:
        return {stage.addressing: stage for stage in repo.index.stages}
    finally:
        repo.close()


def _relative(path: str, work: Path) -> str | None:
    try:
        return Path(path).relative_to(work).as_posix()
    except ValueError:
        return None


def test_every_dataset_gets_the_text_stages_its_plan_needs(dvc_stages, params):
    planned = {name: set(synthesis_plan(params, name)) for name in params.datasets}
    found: dict[str, set[str]] = {name: set() for name in params.datasets}
    for address in dvc_stages:
        group, _, dataset = address.partition("@")
        if group in ("describe", "profile", "reason", *GROUP_STAGE):
            found[dataset].add(GROUP_STAGE.get(group, group))
    assert found == planned


def test_import_folders_match_params(params):
    raw = yaml.safe_load((REPO / "dvc.yaml").read_text())
    folders = {k: v for entry in raw["vars"] for group in ("import_all", "import_descriptions")
               for k, v in (entry.get(group) or {}).items()}
    for dataset, folder in folders.items():
        config = params.dataset(dataset)
        assert folder == (config.path if config.source == "paper" else config.texts_path), dataset


def test_dvc_stages_mirror_the_stage_table(dvc_stages, params):
    """Inputs are deps, outputs are outs/metrics, settings are params, the stage's code is a dep."""
    checked = 0
    for address, stage in dvc_stages.items():
        group, _, dataset = address.partition("@")
        name = GROUP_STAGE.get(group, group)
        if name not in STAGES or name == "experiment":  # experiment outputs are per matrix cell
            continue
        spec = STAGES[name]
        work = params.work_dir(dataset)
        deps = {str(d.def_path) for d in stage.deps}
        outs = {_relative(str(o.def_path), work) for o in stage.outs}
        assert {(work / i).as_posix() for i in spec.inputs} <= deps, address
        if name != "import_texts":  # import_texts' outputs depend on what the texts folder holds
            assert set(spec.outputs) <= outs, address
        source = entry_source(spec.entry)
        assert source is not None, f"{spec.entry} missing"
        code = source.relative_to(REPO).as_posix()
        assert any(code == d or code.startswith(d + "/") for d in deps), (address, code)
        sections = {p for d in stage.deps for p in (getattr(d, "params", None) or [])}
        for section in spec.sections:
            section = section.format(dataset=dataset)
            if section.startswith(("tracking", "evaluate")):
                continue
            assert any(section == s or section.startswith(s + ".") for s in sections), (address, section)
        checked += 1
    assert checked >= 40


def test_synthesis_outputs_persist_and_summaries_are_uncached_metrics(dvc_stages):
    for address, stage in dvc_stages.items():
        group = address.partition("@")[0]
        for out in stage.outs:
            if out.metric:
                assert not out.use_cache, address
            if group in ("describe", "profile", "reason") and str(out.def_path).endswith(".parquet"):
                assert out.persist, address
    plots = [o for s in dvc_stages.values() for o in s.outs if o.plot]
    assert plots and all(str(p.def_path).endswith(("roc.csv", "calibration.csv")) for p in plots)


# --------------------------------------------------------------------------------------------
# A real `dvc repro` of the data stages on MovieLens-100K in a throw-away git + DVC repository.
# --------------------------------------------------------------------------------------------


def _run(args: list[str], cwd: Path, env: dict) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def _ran(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")}


@pytest.fixture
def dvc_project(tmp_path, shared_data):
    for module in ("reasoningrec.data.ingest", "reasoningrec.data.prepare", "reasoningrec.validation"):
        pytest.importorskip(module, reason=f"{module} not written yet")
    project = tmp_path / "project"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "reasoningrec", project / "reasoningrec", ignore=ignore)
    shutil.copytree(REPO / "expectations", project / "expectations", ignore=ignore)
    full = yaml.safe_load((REPO / "dvc.yaml").read_text())
    (project / "dvc.yaml").write_text(yaml.safe_dump({"stages": {k: full["stages"][k] for k in REPRO_STAGES}}))
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["datasets"] = {"ml100k": params["datasets"]["ml100k"]}
    params["paths"]["data_dir"] = str(shared_data)
    params.setdefault("validate", {})["data_docs"] = False  # HTML reports are not what this tests
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (project / ".gitignore").write_text("/data/\n")
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "REASONINGREC_DATA_DIR": str(shared_data),
        "DVC_NO_ANALYTICS": "1",
        "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.org",
        "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.org",
    }
    env.pop("REASONINGREC_PARAMS", None)
    _run(["git", "init", "-q"], project, env)
    _run([str(BIN / "dvc"), "init", "-q"], project, env)
    _run([str(BIN / "dvc"), "config", "core.analytics", "false"], project, env)
    return project, env


@pytest.mark.data
def test_repro_is_incremental_on_movielens(dvc_project):
    project, env = dvc_project
    dvc = str(BIN / "dvc")
    first = _run([dvc, "repro"], project, env)
    assert _ran(first) == {f"{s}@ml100k" for s in REPRO_STAGES}
    assert (project / "data/work/ml100k/samples.parquet").is_file()

    second = _run([dvc, "repro"], project, env)
    assert _ran(second) == set(), second
    assert "Data and pipelines are up to date" in _run([dvc, "status"], project, env)

    text = (project / "params.yaml").read_text()
    (project / "params.yaml").write_text(text.replace("profile_items: 15", "profile_items: 10", 1))
    assert read_params(project / "params.yaml").prepare.profile_items == 10
    third = _run([dvc, "repro"], project, env)
    assert _ran(third) == {"prepare@ml100k"}  # downstream of the change only


@pytest.mark.data
@pytest.mark.slow
def test_exp_run_sets_a_parameter(dvc_project):
    """`dvc exp run -S` runs one experiment with a parameter changed (needs a commit of the tmp repo)."""
    project, env = dvc_project
    dvc = str(BIN / "dvc")
    _run([dvc, "repro"], project, env)
    _run(["git", "add", "-A"], project, env)
    _run(["git", "commit", "-q", "-m", "pipeline"], project, env)
    exp = _run([dvc, "exp", "run", "-S", "prepare.profile_items=12"], project, env)
    assert _ran(exp) == {"prepare@ml100k"}
    shown = _run([dvc, "exp", "show", "--no-pager", "--csv"], project, env)
    assert "prepare.profile_items" in shown and "12" in shown
