"""The CLI, Prefect and DVC on one work folder, each with its own slice, in every order: a stage re-runs
exactly when its completion record does not match, and no runner returns a result that does not
belong to the files on disk."""

from __future__ import annotations

import itertools
import json

import pandas as pd
import pytest
import yaml
from dvc_support import BIN, make_project, ran, run

SLICE = {"cli": 30, "prefect": 45, "dvc": 60}
DATA = ("ingest", "validate_interactions", "prepare", "validate_samples")


def _finished(work) -> dict[str, str]:
    return {
        name: json.loads((work / ".completion" / f"{name}.json").read_text())["finished"]
        for name in DATA
        if (work / ".completion" / f"{name}.json").is_file()
    }


def _users(work) -> int:
    return pd.read_parquet(work / "samples.parquet", columns=["user_id"])["user_id"].nunique()


def _cli(project, users: int) -> int:
    from typer.testing import CliRunner

    from reasoningrec.cli import app

    result = CliRunner().invoke(
        app,
        ["run", "--through", "data", "--params", str(project / "params.yaml"), "--set", f"prepare.max_users={users}"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    record = project / "data" / "work" / "fashion" / ".completion" / "prepare.json"
    return json.loads(record.read_text())["summary"]["users"]


def _prefect(project, users: int) -> int:
    from reasoningrec.orchestration.flows import ingest_validate

    summaries = ingest_validate("fashion", str(project / "params.yaml"), overrides={"prepare": {"max_users": users}})
    return summaries["prepare"]["users"]  # the summary it returns, checked against the files below


def _dvc(project, env, users: int) -> int:
    path = project / "params.yaml"
    raw = yaml.safe_load(path.read_text())
    raw["prepare"]["max_users"] = users
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    run([str(BIN / "dvc"), "repro", "fashion-validate_samples"], project, env)
    again = run([str(BIN / "dvc"), "repro", "fashion-validate_samples"], project, env)
    assert ran(again) == set()
    return json.loads((project / "metrics" / "fashion" / "prepare.json").read_text())["users"]


def _check(order, prefect_api, tmp_path, shared_data, tiny_model_dir, monkeypatch):
    project, env = make_project(tmp_path / "project", shared_data, tiny_model_dir)
    monkeypatch.chdir(project)  # params.yaml's relative paths are the project's, as for DVC
    monkeypatch.delenv("REASONINGREC_DATA_DIR", raising=False)
    monkeypatch.setenv("REASONINGREC_METRICS_DIR", str(project / "metrics"))
    work = project / "data" / "work" / "fashion"
    runners = {
        "cli": lambda n: _cli(project, n),
        "prefect": lambda n: _prefect(project, n),
        "dvc": lambda n: _dvc(project, env, n),
    }
    previous = None
    for name in order:
        before = _finished(work)
        reported = runners[name](SLICE[name])
        after = _finished(work)
        assert _users(work) == SLICE[name] == reported, (order, name)  # never a stale result
        if previous is not None and name != "dvc":  # (DVC's first repro replaces every output it declares)
            # Only max_users changed: ingest and the first validation keep their records, prepare re-runs.
            assert (
                after["ingest"] == before["ingest"]
                and after["validate_interactions"] == before["validate_interactions"]
            ), (order, name)
        if before:
            assert after["prepare"] != before["prepare"], (order, name)
        # The same runner again finds every call up to date: nothing runs.
        runners[name](SLICE[name])
        assert _finished(work) == after, (order, name)
        previous = name


ORDERS = list(itertools.permutations(SLICE))
CYCLIC = [("cli", "prefect", "dvc"), ("prefect", "dvc", "cli"), ("dvc", "cli", "prefect")]  # every ordered pair


@pytest.mark.data
@pytest.mark.parametrize("order", CYCLIC, ids="->".join)
def test_runners_in_turn_never_serve_a_stale_result(
    order, prefect_api, tmp_path, shared_data, tiny_model_dir, monkeypatch
):
    _check(order, prefect_api, tmp_path, shared_data, tiny_model_dir, monkeypatch)


@pytest.mark.data
@pytest.mark.slow
@pytest.mark.parametrize("order", [o for o in ORDERS if o not in CYCLIC], ids="->".join)
def test_every_other_order_too(order, prefect_api, tmp_path, shared_data, tiny_model_dir, monkeypatch):
    _check(order, prefect_api, tmp_path, shared_data, tiny_model_dir, monkeypatch)


@pytest.mark.data
def test_dvc_adopts_what_another_runner_completed(tmp_path, shared_data, tiny_model_dir, monkeypatch):
    """After `reasoningrec run`, `dvc commit` records its outputs in dvc.lock; `dvc repro` then runs nothing."""
    project, env = make_project(tmp_path / "project", shared_data, tiny_model_dir)
    monkeypatch.chdir(project)
    monkeypatch.setenv("REASONINGREC_METRICS_DIR", str(project / "metrics"))
    _cli(project, 40)
    dvc = str(BIN / "dvc")
    run([dvc, "commit", "-f", "--with-deps", "fashion-validate_samples"], project, env)
    assert ran(run([dvc, "repro", "fashion-validate_samples"], project, env)) == set()
