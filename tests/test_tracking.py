"""MLflow run contract, run tags, and the registry's champion/challenger rule."""

from __future__ import annotations

import subprocess
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow_support import template_store, tracking_params

from reasoningrec import tracking
from reasoningrec.tracking import CHALLENGER, CHAMPION, RegistryError, decide_alias


@pytest.fixture(scope="session")
def template_db(tmp_path_factory) -> Path:
    return template_store(tmp_path_factory)


@pytest.fixture
def params(tmp_path, template_db, monkeypatch):
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    params = tracking_params(tmp_path, template_db)
    # Anything that fell back to MLflow's global store would land here, not in the repository.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", params.tracking.tracking_uri)
    return params


CONSTANT_MODEL = Path(__file__).with_name("constant_model.py")


def _constant_model(value: float) -> dict:
    """``mlflow.pyfunc.log_model`` arguments of a model answering ``value`` (which version was loaded)."""
    return {"python_model": str(CONSTANT_MODEL), "model_config": {"value": value}, "pip_requirements": ["mlflow"]}


def _train(
    params, tmp_path: Path, valid_auc: float | None, *, seed: int, dataset: str = "beauty", **extra: float
) -> str:
    """Log a run with a LoggedModel (answering ``seed`` when loaded); register it separately."""
    metrics = {"valid_auc": valid_auc, "test_auc": 0.5, **extra}
    return tracking.log_run(
        params,
        dataset=dataset,
        method="reasoningrec",
        k_shots=64,
        seed=seed,
        settings={},
        metrics=metrics,
        model=_constant_model(float(seed)),
    )


def _aliases(params, dataset: str = "beauty") -> dict[str, int]:
    client = tracking.get_client(params)
    model = client.get_registered_model(tracking.registered_model_name(params, dataset))
    return {alias: int(version) for alias, version in model.aliases.items()}


# --------------------------------------------------------------------------- the rule itself


@pytest.mark.parametrize(
    ("new", "champion", "has_champion", "expected"),
    [
        (0.60, None, False, CHAMPION),  # first version
        (None, None, False, CHAMPION),  # first version even without a score
        (0.71, 0.70, True, CHAMPION),  # strictly better
        (0.70, 0.70, True, CHALLENGER),  # tie keeps the champion
        (0.69, 0.70, True, CHALLENGER),  # worse
        (None, 0.70, True, CHALLENGER),  # unscored never takes over
        (float("nan"), 0.70, True, CHALLENGER),
        (0.55, None, True, CHAMPION),  # a hand-promoted champion without a score
    ],
)
def test_decide_alias(new, champion, has_champion, expected):
    assert decide_alias(new, champion, has_champion) == expected
    # A version whose explanations miss a floor never takes champion, however good its AUC.
    assert decide_alias(new, champion, has_champion, floors_met=False) == CHALLENGER


def test_champion_floors_on_explanation_quality():
    from reasoningrec.config import ChampionFloors
    from reasoningrec.tracking import meets_floors

    none = ChampionFloors()
    assert meets_floors({}, none) == (True, [])
    floors = ChampionFloors(grounding=0.6, parse_rate=0.9)
    assert meets_floors({"expl_grounding": 0.7, "parse_failure_rate": 0.05}, floors) == (True, [])
    ok, missed = meets_floors({"expl_grounding": 0.5, "parse_failure_rate": 0.2}, floors)
    assert not ok and missed == ["grounding 0.500 < 0.6", "parse_rate 0.800 < 0.9"]
    ok, missed = meets_floors({"valid_auc": 0.9}, ChampionFloors(grounding=0.1))  # writes no explanations
    assert not ok and missed == ["grounding not measured < 0.1"]


# --------------------------------------------------------------------------- registry


def test_a_better_auc_with_ungrounded_explanations_stays_challenger(params, tmp_path):
    floors = params.tracking.champion_floors.model_copy(update={"grounding": 0.6})
    strict = params.model_copy(update={"tracking": params.tracking.model_copy(update={"champion_floors": floors})})
    first = tracking.register_run_model(strict, "beauty", _train(strict, tmp_path, 0.70, seed=1, expl_grounding=0.8))
    better = tracking.register_run_model(strict, "beauty", _train(strict, tmp_path, 0.90, seed=2, expl_grounding=0.3))
    assert (first.alias, better.alias) == (CHAMPION, CHALLENGER)
    assert _aliases(strict) == {CHAMPION: 1, CHALLENGER: 2}


def test_registry_first_better_worse_tie(params, tmp_path):
    first = tracking.register_run_model(params, "beauty", _train(params, tmp_path, 0.70, seed=1))
    assert (first.version, first.alias, first.previous_champion) == (1, CHAMPION, None)
    assert _aliases(params) == {CHAMPION: 1}

    worse = tracking.register_run_model(params, "beauty", _train(params, tmp_path, 0.65, seed=2))
    assert (worse.version, worse.alias) == (2, CHALLENGER)
    assert _aliases(params) == {CHAMPION: 1, CHALLENGER: 2}

    tie = tracking.register_run_model(params, "beauty", _train(params, tmp_path, 0.70, seed=3))
    assert tie.alias == CHALLENGER
    assert _aliases(params) == {CHAMPION: 1, CHALLENGER: 3}

    better = tracking.register_run_model(params, "beauty", _train(params, tmp_path, 0.75, seed=4))
    assert (better.alias, better.previous_champion, better.valid_auc) == (CHAMPION, 1, 0.75)
    assert _aliases(params) == {CHAMPION: 4, CHALLENGER: 3}

    rows = tracking.list_versions(params, "beauty")
    assert [(r["version"], r["valid_auc"], r["aliases"]) for r in rows] == [
        (1, 0.70, []),
        (2, 0.65, []),
        (3, 0.70, [CHALLENGER]),
        (4, 0.75, [CHAMPION]),
    ]
    # Other datasets have their own registered model and their own champion.
    other = tracking.register_run_model(params, "fashion", _train(params, tmp_path, 0.10, seed=5, dataset="fashion"))
    assert (other.name, other.version, other.alias) == ("reasoningrec-fashion", 1, CHAMPION)


def test_manual_promote_is_what_the_loader_loads(params, tmp_path):
    for seed, auc in ((1, 0.80), (2, 0.60)):
        tracking.register_run_model(params, "beauty", _train(params, tmp_path, auc, seed=seed))
    one_row = pd.DataFrame({"prompt": ["x"]})
    assert tracking.load_model(params, "beauty").predict(one_row).tolist() == [1.0]

    assert tracking.promote(params, "beauty", 2) == 1
    assert _aliases(params) == {CHAMPION: 2}  # the challenger alias left the promoted version
    assert tracking.load_model(params, "beauty").predict(one_row).tolist() == [2.0]

    # A move made outside the package (the MLflow UI does exactly this call) is respected too.
    client = MlflowClient(params.tracking.tracking_uri, params.tracking.tracking_uri)
    client.set_registered_model_alias("reasoningrec-beauty", CHAMPION, "1")
    assert tracking.load_model(params, "beauty").predict(one_row).tolist() == [1.0]

    # A later, better version still has to beat the hand-picked champion's own score (0.80).
    third = tracking.register_run_model(params, "beauty", _train(params, tmp_path, 0.79, seed=3))
    assert third.alias == CHALLENGER


def test_a_ui_alias_move_keeps_challenger_until_the_next_registration(params, tmp_path):
    """The MLflow UI edits one version's aliases: it sets the added ones and deletes the removed ones.
    Adding ``champion`` to the challenger therefore leaves that version holding both."""
    for seed, auc in ((1, 0.80), (2, 0.60)):
        tracking.register_run_model(params, "beauty", _train(params, tmp_path, auc, seed=seed))
    assert _aliases(params) == {CHAMPION: 1, CHALLENGER: 2}
    client = tracking.get_client(params)
    client.set_registered_model_alias("reasoningrec-beauty", CHAMPION, "2")  # the UI's one call
    assert _aliases(params) == {CHAMPION: 2, CHALLENGER: 2}
    assert [r["aliases"] for r in tracking.list_versions(params, "beauty")] == [[], [CHALLENGER, CHAMPION]]
    # The next registration moves challenger on (or champion, if it beats version 2's 0.60).
    third = tracking.register_run_model(params, "beauty", _train(params, tmp_path, 0.55, seed=3))
    assert third.alias == CHALLENGER and _aliases(params) == {CHAMPION: 2, CHALLENGER: 3}


def test_a_run_logged_before_logged_models_registers_its_artifact_folder(params, tmp_path):
    """Runs logged with the pyfunc folder among their artifacts (older stores) still register and load."""
    folder = tmp_path / "old-model"
    mlflow.pyfunc.save_model(folder, **_constant_model(7.0))
    run_id = tracking.log_run(
        params,
        dataset="beauty",
        method="reasoningrec",
        k_shots=64,
        seed=7,
        settings={},
        metrics={"valid_auc": 0.7},
        artifacts={"model": folder},
    )
    registration = tracking.register_run_model(params, "beauty", run_id)
    version = tracking.get_client(params).get_model_version("reasoningrec-beauty", str(registration.version))
    assert version.source.endswith(f"{run_id}/artifacts/model")
    assert tracking.load_model(params, "beauty").predict(pd.DataFrame({"prompt": ["x"]})).tolist() == [7.0]
    bare = tracking.log_run(params, dataset="beauty", method="tallrec", k_shots=64, seed=8, settings={}, metrics={})
    with pytest.raises(RegistryError, match="has no logged model 'model' to register"):
        tracking.register_run_model(params, "beauty", bare)


def test_promote_and_load_errors_name_what_exists(params, tmp_path):
    with pytest.raises(RegistryError, match="no version of 'reasoningrec-beauty' has alias 'champion'"):
        tracking.load_model(params, "beauty")
    tracking.register_run_model(params, "beauty", _train(params, tmp_path, 0.7, seed=1))
    with pytest.raises(RegistryError, match=r"has no version 7 \(versions: 1\)"):
        tracking.promote(params, "beauty", 7)


def test_tracking_uri_env_overrides_params(params, monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert tracking.tracking_uri(params) == params.tracking.tracking_uri
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///elsewhere.db")
    assert tracking.tracking_uri(params) == "sqlite:///elsewhere.db"
    assert tracking.artifact_root(params) == (tmp_path / "mlartifacts").resolve().as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking.artifact_root(params) is None  # the server owns artifact storage


# --------------------------------------------------------------------------- runs


def test_log_run_follows_the_contract(params, tmp_path):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    (adapter / "reasoningrec.json").write_text('{"base_model": "embedded"}')
    plot = tmp_path / "roc.png"
    plot.write_bytes(b"\x89PNG fake")
    predictions = pd.DataFrame(
        {"user_id": ["u1", "u2"], "split": ["test", "test"], "label": [1, 0], "p_yes": [0.9, 0.2]}
    )
    metrics = {
        "valid_auc": 0.71,
        "test_auc": 0.68,
        "test_accuracy": 0.6,
        "test_log_loss": 0.65,
        "test_ece": 0.05,
        "test_bertscore_f1": 0.52,
        "parse_failure_rate": 0.0,
        "skipped": None,
        "also_skipped": float("nan"),
    }
    history = [
        {"epoch": 1, "train_loss": 1.5, "epoch_valid_auc": 0.60},
        {"epoch": 2, "train_loss": 1.1, "epoch_valid_auc": 0.71},
    ]
    run_id = tracking.log_run(
        params,
        dataset="beauty",
        method="reasoningrec",
        k_shots=64,
        seed=0,
        settings={"train": {"lora_r": 8, "target_modules": ["q_proj", "v_proj"]}, "bertscore_model": "minilm"},
        metrics=metrics,
        epoch_history=history,
        artifacts={"adapter": adapter, "plots": plot},
        predictions=predictions,
    )
    client = tracking.get_client(params)
    run = client.get_run(run_id)
    tags = run.data.tags
    assert {k: tags[k] for k in ("dataset", "method", "k_shots", "seed")} == {
        "dataset": "beauty",
        "method": "reasoningrec",
        "k_shots": "64",
        "seed": "0",
    }
    assert tags["git_commit"] != "" and tags["hardware"].startswith("cpu=")
    assert run.info.status == "FINISHED" and run.info.run_name == "beauty-reasoningrec-k64-s0"
    assert run.data.params["train.lora_r"] == "8"
    assert run.data.params["train.target_modules"] == "q_proj,v_proj"
    assert run.data.params["bertscore_model"] == "minilm"
    assert run.data.params["k_shots"] == "64"
    assert set(run.data.metrics) == {
        "valid_auc",
        "test_auc",
        "test_accuracy",
        "test_log_loss",
        "test_ece",
        "test_bertscore_f1",
        "parse_failure_rate",
        "train_loss",
        "epoch_valid_auc",
    }
    curve = client.get_metric_history(run_id, "epoch_valid_auc")
    assert sorted((m.step, m.value) for m in curve) == [(1, 0.60), (2, 0.71)]

    listed = {a.path for a in client.list_artifacts(run_id)}
    assert listed == {"adapter", "plots", "predictions"}
    assert {a.path for a in client.list_artifacts(run_id, "adapter")} == {
        "adapter/adapter_config.json",
        "adapter/reasoningrec.json",
    }
    local = client.download_artifacts(run_id, tracking.PREDICTIONS_ARTIFACT, str(tmp_path / "dl"))
    pd.testing.assert_frame_equal(pd.read_parquet(local), predictions)
    # Artifacts land in the configured folder, not in ./mlruns.
    assert run.info.artifact_uri.startswith((tmp_path / "mlartifacts").resolve().as_uri())


def test_rerun_leaves_exactly_one_run_per_combination(params):
    common = dict(dataset="beauty", method="tallrec", k_shots="all", seed=1, settings={})
    first = tracking.log_run(params, metrics={"test_auc": 0.6}, **common)
    second = tracking.log_run(params, metrics={"test_auc": 0.7}, **common)
    other_seed = tracking.log_run(params, metrics={"test_auc": 0.5}, **{**common, "seed": 2})
    client = tracking.get_client(params)
    found = tracking.find_runs(client, params, dataset="beauty", method="tallrec", k_shots="all")
    assert sorted(r.info.run_id for r in found) == sorted([second, other_seed])
    assert client.get_run(first).info.lifecycle_stage == "deleted"


def test_failed_logging_marks_the_run_failed(params, tmp_path):
    with pytest.raises(Exception, match="does not exist"):
        tracking.log_run(
            params,
            dataset="beauty",
            method="reasoningrec",
            k_shots=64,
            seed=0,
            settings={},
            metrics={},
            artifacts={"adapter": tmp_path / "missing"},
        )
    client = tracking.get_client(params)
    runs = client.search_runs([tracking.experiment_id(client, params)])
    assert [r.info.status for r in runs] == ["FAILED"]


# --------------------------------------------------------------------------- tags


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def test_git_commit_tag(tmp_path):
    assert tracking.git_commit(tmp_path) == "unknown"  # not a repository
    _git(tmp_path, "init", "-q")
    assert tracking.git_commit(tmp_path) == "unknown"  # no commit yet
    (tmp_path / "a.txt").write_text("one")
    _git(tmp_path, "add", "a.txt")
    _git(tmp_path, "commit", "-q", "-m", "one")
    head = _git(tmp_path, "rev-parse", "HEAD")
    assert tracking.git_commit(tmp_path) == head
    (tmp_path / "a.txt").write_text("two")
    assert tracking.git_commit(tmp_path) == f"{head}-dirty"


def test_dvc_hashes_cover_only_the_datasets_outputs(tmp_path):
    lock = tmp_path / "dvc.lock"
    assert tracking.dvc_hashes(lock, "data/work/beauty") == {}
    lock.write_text(
        """schema: '2.0'
stages:
  prepare@beauty:
    cmd: reasoningrec prepare -d beauty
    outs:
    - path: data/work/beauty/samples.parquet
      hash: md5
      md5: 1111
      size: 10
    - path: data/work/beauty/prepare.json
      hash: md5
      md5: 2222
  prepare@fashion:
    outs:
    - path: data/work/fashion/samples.parquet
      hash: md5
      md5: 3333
  records@beauty:
    outs:
    - path: data/work/beauty/records
      hash: md5
      md5: 4444.dir
"""
    )
    assert tracking.dvc_hashes(lock, "data/work/beauty") == {
        "dvc_md5.samples.parquet": "1111",
        "dvc_md5.prepare.json": "2222",
        "dvc_md5.records": "4444.dir",
    }
    assert tracking.dvc_hashes(lock, tmp_path / "data/work/fashion") == {"dvc_md5.samples.parquet": "3333"}


def test_flatten_nested_settings():
    assert tracking.flatten({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": None}) == {
        "a.b": "1",
        "a.c.d": "1,2",
        "e": "None",
    }


def test_ui_command_binds_localhost_to_the_configured_store(params):
    command = tracking.ui_command(params, port=5055)
    assert Path(command[0]).name == "mlflow" and command[1] == "ui"
    options = dict(zip(command[2::2], command[3::2], strict=False))
    assert options["--backend-store-uri"] == params.tracking.tracking_uri
    assert options["--host"] == "127.0.0.1" and options["--port"] == "5055"
    assert options["--artifacts-destination"].endswith("/mlartifacts")


def test_promote_command(params, tmp_path):
    import yaml
    from typer.testing import CliRunner

    from reasoningrec.app import app
    from reasoningrec.commands import registry  # noqa: F401  (registers the commands)

    for seed, auc in ((1, 0.9), (2, 0.8)):
        tracking.register_run_model(params, "beauty", _train(params, tmp_path, auc, seed=seed))
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params.model_dump(mode="json", by_alias=True)))
    result = CliRunner().invoke(app, ["promote", "-d", "beauty", "--version", "2", "--params", str(params_file)])
    assert result.exit_code == 0, result.output
    assert "champion is now version 2 (was 1)" in result.output
    assert _aliases(params) == {CHAMPION: 2}

    # `register` finds the run of a (dataset, method, K, seed) and applies the champion rule.
    _train(params, tmp_path, 0.95, seed=3)
    registered = CliRunner().invoke(
        app,
        [
            "register",
            "-d",
            "beauty",
            "--method",
            "reasoningrec",
            "--k",
            "64",
            "--seed",
            "3",
            "--params",
            str(params_file),
        ],
    )
    assert registered.exit_code == 0, registered.output
    assert '"alias": "champion"' in registered.output and '"previous_champion": 2' in registered.output
    missing = CliRunner().invoke(
        app, ["register", "-d", "beauty", "--seed", "9", "--params", str(params_file)], standalone_mode=False
    )
    assert isinstance(missing.exception, RegistryError)
    assert "no MLflow run for beauty-reasoningrec-k64-s9" in str(missing.exception)


def test_store_lock_is_per_sqlite_file_and_reentrant(params, monkeypatch):
    lock = tracking.store_lock(params)
    assert lock is tracking.store_lock(params)
    assert lock.lock_file == params.tracking.tracking_uri.removeprefix("sqlite:///") + ".lock"
    with lock, lock:  # log_run inside a caller's lock must not deadlock
        assert lock.is_locked
    assert not lock.is_locked
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert not hasattr(tracking.store_lock(params), "lock_file")


def test_concurrent_registrations_keep_the_champion_rule(params, tmp_path):
    """Threads registering at once (a Prefect pool) still leave the best version as champion."""
    from concurrent.futures import ThreadPoolExecutor

    scores = {1: 0.61, 2: 0.74, 3: 0.69, 4: 0.70}
    run_ids = {seed: _train(params, tmp_path, auc, seed=seed) for seed, auc in scores.items()}
    with ThreadPoolExecutor(4) as pool:
        done = list(pool.map(lambda rid: tracking.register_run_model(params, "beauty", rid), run_ids.values()))
    assert sorted(r.version for r in done) == [1, 2, 3, 4]
    champion = tracking.champion_version(params, "beauty")
    assert champion.run_id == run_ids[2]
