"""The completion rule on real data: a call is done only when its record matches the disk."""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest

from reasoningrec import completion
from reasoningrec.completion import StaleInputs, check, execute
from reasoningrec.errors import DataError, ValidationFailed
from reasoningrec.pipeline import call_for, plan


@pytest.fixture
def work(shared_data, tmp_path, monkeypatch):
    """Params for the paper authors' Fashion data, 30 users, outputs in tmp."""
    from conftest import REPO_ROOT

    from reasoningrec.config import read_params

    monkeypatch.setenv("REASONINGREC_DATA_DIR", str(shared_data))
    monkeypatch.setenv("REASONINGREC_METRICS_DIR", str(tmp_path / "metrics"))
    return read_params(
        REPO_ROOT / "params.yaml",
        assignments=[f"paths.work_dir={tmp_path / 'work'}", "prepare.max_users=30", "validate.data_docs=false"],
    )


def _run(params, names, **kwargs):
    calls = plan(params, "fashion", methods=[])
    return {name: execute(params, call_for(params, "fashion", name), calls=calls, **kwargs) for name in names}


DATA = ("ingest", "validate_interactions", "prepare", "validate_samples")


def test_a_call_is_done_only_when_its_record_matches_the_disk(work):
    first = _run(work, DATA)
    assert all(o.ran for o in first.values())
    again = _run(work, DATA)
    assert not any(o.ran for o in again.values())
    assert again["prepare"].summary == first["prepare"].summary  # the recorded summary, not a new one
    prepare = call_for(work, "fashion", "prepare")
    samples = work.work_dir("fashion") / "samples.parquet"

    # An output that is not the one it wrote, a missing output: not done.
    original = samples.read_bytes()
    samples.write_bytes(original + b" ")
    assert not check(work, prepare).up_to_date and "samples.parquet" in check(work, prepare).reason
    samples.unlink()
    assert not check(work, prepare).up_to_date
    assert _run(work, ["prepare"])["prepare"].ran
    # A changed setting of its sections: not done; a setting it does not read: still done.
    from conftest import REPO_ROOT

    from reasoningrec.config import read_params

    other = read_params(
        REPO_ROOT / "params.yaml",
        assignments=[
            f"paths.work_dir={work.paths.work_dir}",
            "prepare.max_users=30",
            "validate.data_docs=false",
            "train.epochs=7",
        ],
    )
    assert check(other, call_for(other, "fashion", "prepare")).up_to_date
    fewer = other.model_copy(update={"prepare": other.prepare.model_copy(update={"max_users": 20})})
    verdict = check(fewer, call_for(fewer, "fashion", "prepare"))
    assert not verdict.up_to_date and verdict.reason == "its settings changed since it last ran"
    # Changed input bytes (a changed upstream) make the call stale too.
    interactions = work.work_dir("fashion") / "interactions.parquet"
    frame = pd.read_parquet(interactions)
    frame.iloc[:-1].to_parquet(interactions, index=False)
    assert "input interactions.parquet changed" in check(work, prepare).reason


def test_code_changes_make_a_call_stale(work, tmp_path, monkeypatch):
    _run(work, ["ingest"])
    ingest = call_for(work, "fashion", "ingest")
    assert check(work, ingest).up_to_date
    fake_root = tmp_path / "project"
    for relative in ingest.stage.code:
        source = completion.PROJECT_ROOT / relative
        target = fake_root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_file():
            target.write_bytes(source.read_bytes())
        else:
            import shutil

            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(completion, "PROJECT_ROOT", fake_root)
    assert check(work, ingest).up_to_date  # the same bytes: the same digest
    (fake_root / "reasoningrec" / "data" / "kcore.py").write_text("# changed\n", encoding="utf-8")
    assert check(work, ingest).reason == "its code changed since it last ran"


def test_a_stage_killed_between_its_outputs_is_not_done(work, monkeypatch):
    _run(work, ["ingest", "validate_interactions"])
    import reasoningrec.data.prepare as prepare_module

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # the process dies after samples.parquet, before item_reviews.parquet

    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
        patch.setattr(prepare_module, "write_parquet", killed)
        _run(work, ["prepare"])
    assert (work.work_dir("fashion") / "samples.parquet").is_file()
    assert not check(work, call_for(work, "fashion", "prepare")).up_to_date
    with pytest.raises(StaleInputs, match=r"upstream stage prepare is not up to date.*reasoningrec prepare -d fashion"):
        _run(work, ["validate_samples"])
    assert _run(work, ["prepare", "validate_samples"])["validate_samples"].ran


def test_bad_raw_data_fails_ingest_and_nothing_below_runs(work, tmp_path, shared_data, monkeypatch):
    import shutil

    raw = tmp_path / "raw"
    shutil.copytree(shared_data / "reasoningrec-paper" / "fashion", raw / "reasoningrec-paper" / "fashion")
    monkeypatch.setenv("REASONINGREC_DATA_DIR", str(raw))
    _run(work, DATA)
    ratings = raw / "reasoningrec-paper" / "fashion" / "ratings.csv"
    lines = ratings.read_text(encoding="utf-8").splitlines()
    lines[5] = lines[5].replace(",", ",x", 1)
    ratings.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataError):
        _run(work, ["ingest"])
    assert not (work.work_dir("fashion") / completion.RECORD_DIR / "ingest.json").exists()
    # The previous interactions.parquet stays, but nothing runs on it any more.
    with pytest.raises(StaleInputs, match="upstream stage ingest is not up to date"):
        _run(work, ["validate_interactions"])
    with pytest.raises(StaleInputs, match="upstream stage"):
        _run(work, ["prepare"])


def test_a_failed_validation_stops_every_stage_below_it(work, tmp_path, capsys):
    import yaml

    from reasoningrec.cli import main

    _run(work, ["ingest"])
    strict = work.model_copy(update={"validate_": work.validate_.model_copy(update={"timestamp_max": 1_000_000_000})})
    with pytest.raises(ValidationFailed, match="timestamp"):
        _run(strict, ["validate_interactions"])
    report = strict.work_dir("fashion") / "validation" / "validate_interactions.json"
    assert json.loads(report.read_text())["success"] is False
    with pytest.raises(StaleInputs, match=rf"validate_interactions failed \(its report: {report}"):
        _run(strict, ["prepare"])
    # Through the CLI: exit code 2 and the report, for the check and for the stage below it.
    path = tmp_path / "strict.yaml"
    path.write_text(yaml.safe_dump(strict.model_dump(mode="json", by_alias=True)))
    for argv in (["validate", "-d", "fashion", "--stage", "interactions"], ["prepare", "-d", "fashion"]):
        with pytest.raises(SystemExit) as caught:
            import sys

            sys.argv = ["reasoningrec", *argv, "--params", str(path)]
            main()
        assert caught.value.code == 2
        assert str(report) in capsys.readouterr().err or argv[0] == "validate"


def test_stale_temporary_files_are_removed_on_the_next_run(work):
    folder = work.work_dir("fashion")
    folder.mkdir(parents=True)
    dead = folder / ".interactions.parquet.999999999.abc123.tmp"
    alive = folder / f".items.parquet.{os.getpid()}.def456.tmp"
    dead.write_bytes(b"half")
    alive.write_bytes(b"being written")
    _run(work, ["ingest"])
    assert not dead.exists() and alive.exists()


def test_each_call_writes_its_numbers_for_git_and_dvc(work, tmp_path):
    _run(work, ["ingest"])
    numbers = json.loads((tmp_path / "metrics" / "fashion" / "ingest.json").read_text())
    assert numbers["users"] == 1273 and all(not isinstance(v, str) for v in numbers.values())
    assert completion.numeric_tree({"a": 1, "b": "x", "c": {"d": 2.5, "e": [1]}, "f": True}) == {
        "a": 1,
        "c": {"d": 2.5},
    }
