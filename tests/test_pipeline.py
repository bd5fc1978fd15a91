"""The pipeline definition: the stage table and the plan every runner executes."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from reasoningrec import pipeline
from reasoningrec.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_text_stages_follow_the_dataset(params):
    assert pipeline.text_stages(params, "beauty") == ["import_texts"]
    assert pipeline.text_stages(params, "ml1m") == ["import_texts", "profile", "reason"]
    assert pipeline.text_stages(params, "ml100k") == ["describe", "profile", "reason"]


def test_plan_of_the_main_job(slice_params):
    calls = pipeline.plan(slice_params, "fashion")
    assert [c.name for c in calls] == [
        "ingest",
        "validate_interactions",
        "prepare",
        "validate_samples",
        "import_texts",
        "describe-llm",
        "vocabulary",
        "records",
        "experiment-reasoningrec-k16-s42",
        "compare",
    ]
    describe = pipeline.find_call(calls, "describe-llm")
    assert describe.output_names() == ("llm/descriptions.parquet", "llm/describe.json")
    assert describe.command() == "reasoningrec describe -d fashion --into llm"
    records = pipeline.find_call(calls, "records")
    assert {"descriptions.parquet", "profiles.parquet", "reasoning.parquet"} <= set(records.input_names())
    assert pipeline.find_call(calls, "compare").input_names() == ("runs/reasoningrec-k16-s42/metrics.json",)


def test_every_input_is_made_earlier_in_the_plan(params):
    for dataset in params.datasets:
        calls = pipeline.plan(params, dataset, baselines=True)
        made: set[str] = set()
        for call in calls:
            missing = [n for n in call.input_names() if n not in made]
            assert missing == [], (dataset, call.name, missing)
            made.update(call.output_names())
        assert len({c.name for c in calls}) == len(calls)


def test_experiment_runs_and_phases(params):
    runs = pipeline.experiment_runs(params, ["tallrec", "zeroshot-vanilla"], [64, 128], [1, 2])
    assert runs == [
        ("tallrec", 64, 1),
        ("tallrec", 64, 2),
        ("tallrec", 128, 1),
        ("tallrec", 128, 2),
        ("zeroshot-vanilla", 0, 1),
    ]
    data = pipeline.plan(params, "ml100k", through="data")
    assert [c.name for c in data] == ["ingest", "validate_interactions", "prepare", "validate_samples"]
    with pytest.raises(ConfigError, match="unknown phase"):
        pipeline.plan(params, "ml100k", through="report")
    with pytest.raises(ConfigError, match="unknown dataset"):
        pipeline.plan(params, "nope")


def test_call_for_finds_the_plan_call_or_makes_one(slice_params):
    call = pipeline.call_for(slice_params, "fashion", "experiment", method="zeroshot-vanilla", k_shots=64, seed=3)
    assert call.name == "experiment-zeroshot-vanilla-k0-s3"  # zero-shot runs are K = 0
    assert (
        pipeline.call_for(slice_params, "fashion", "records").input_names()
        == pipeline.find_call(pipeline.plan(slice_params, "fashion"), "records").input_names()
    )
    with pytest.raises(ConfigError, match="unknown stage 'tarin'"):
        pipeline.call_for(slice_params, "fashion", "tarin")


def test_entry_points_exist_and_take_what_the_calls_pass(params):
    import inspect

    for stage in pipeline.STAGES.values():
        function = pipeline.resolve_entry(stage.entry)
        accepted = inspect.signature(function).parameters
        assert list(accepted)[:2] == ["params", "dataset"], stage.name
        assert set(stage.fixed) <= set(accepted), stage.name
        for name in stage.code:
            assert (ROOT / name).exists(), (stage.name, name)


def _literal_stage_lists(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Tuple | ast.List | ast.Set):
            named = [e.value for e in node.elts if isinstance(e, ast.Constant) and e.value in pipeline.STAGES]
            if len(named) >= 3:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_the_stage_list_exists_once():
    """No module outside the pipeline package (reasoningrec/pipeline/) lists the pipeline's stages."""
    files = [
        p
        for folder in ("reasoningrec", "tools", "benchmarks")
        if (ROOT / folder).is_dir()
        for p in (ROOT / folder).rglob("*.py")
    ]
    offenders = [
        hit
        for path in files
        if (ROOT / "reasoningrec" / "pipeline") not in path.parents
        for hit in _literal_stage_lists(path)
    ]
    assert offenders == [], offenders


def test_the_processes_and_devices_of_a_run_are_in_no_stage_settings(params):
    """train.processes and llm.devices change where the work runs, not its result: no stage is redone."""
    from reasoningrec.config import parse_params

    spread = parse_params(
        {
            **params.model_dump(mode="json", by_alias=True),
            "train": {**params.train.model_dump(mode="json"), "processes": 4},
            "llm": {**params.llm.model_dump(mode="json"), "devices": [0, 1]},
        }
    )
    dataset = next(iter(params.datasets))
    for stage in pipeline.STAGES.values():
        assert pipeline.section_values(spread, stage.sections, dataset) == pipeline.section_values(
            params, stage.sections, dataset
        ), stage.name
    experiment = pipeline.stage("experiment").sections
    assert {f"train.{name}" for name in params.train.model_dump()} - set(experiment) == {"train.processes"}
    changed = parse_params(
        {
            **params.model_dump(mode="json", by_alias=True),
            "train": {**params.train.model_dump(mode="json"), "lora_r": 16},
        }
    )
    assert pipeline.section_values(changed, experiment, dataset) != pipeline.section_values(params, experiment, dataset)
