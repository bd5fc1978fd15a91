"""The README's main job (`reasoningrec run`), end to end on real Fashion data, the tiny model standing
in for SmolLM2: every stage runs for real (ingest, GX validation, prepare, import of the authors'
texts, a few item descriptions by the LLM, records, LoRA training, scoring, explanations, BERTScore,
MLflow run, registry), then a second run finds every call up to date."""

from __future__ import annotations

import pytest
from mlflow_support import template_store, tracking_params

from reasoningrec.runner import format_summary, run_plan


@pytest.fixture(scope="module")
def main_job(shared_data, tiny_model_dir, tmp_path_factory):
    from conftest import REPO_ROOT

    from reasoningrec.config import read_params

    tmp = tmp_path_factory.mktemp("main-job")
    base = tracking_params(
        tmp,
        template_store(tmp_path_factory),
        paths={"work_dir": str(tmp / "work"), "cache_dir": str(tmp / "cache"), "data_dir": str(shared_data)},
        llm={"backend": "hf", "model": str(tiny_model_dir), "batch_size": 2},
    )
    repo = read_params(
        REPO_ROOT / "params.yaml",
        overrides={
            "describe": {"max_new_tokens": 8, "limit": 2},
            "records": {"k_shots": [8], "valid_size": 8, "max_length": 512},
            "pipeline": {"k_shots": [8]},
            "train": {"base_model": str(tiny_model_dir), "batch_size": 4, "grad_accum": 1, "epochs": 1},
            "evaluate": {"explain_limit": 2, "explain_max_new_tokens": 8},
        },
    )
    tracking = base.tracking.model_copy(update={"model_prefix": repo.tracking.model_prefix})
    params = repo.model_copy(update={"paths": base.paths, "llm": base.llm, "tracking": tracking})
    lines: list[str] = []
    first = run_plan(params, say=lines.append)
    second = run_plan(params, say=lines.append)
    return params, first, second, lines


def test_every_stage_runs_once_and_registers_a_champion(main_job):
    params, first, second, lines = main_job
    assert [o.call.name for o in first] == [
        "ingest",
        "validate_interactions",
        "prepare",
        "validate_samples",
        "import_texts",
        "describe-llm",
        "vocabulary",
        "records",
        "experiment-reasoningrec-k8-s42",
        "compare",
    ]
    assert all(o.ran for o in first) and not any(o.ran for o in second)
    summaries = {o.call.name: o.summary for o in first}
    assert summaries["prepare"]["users"] == 40
    assert summaries["describe-llm"]["count"] == 2
    metrics = summaries["experiment-reasoningrec-k8-s42"]["metrics"]
    assert 0.0 <= metrics["test_auc"] <= 1.0 and 0.0 <= metrics["valid_auc"] <= 1.0  # both classes present
    assert "test_bertscore_f1" in metrics
    # Every explanation parses and states the scored label (consistent by construction).
    assert metrics["explained"] == 2 and metrics["parse_failure_rate"] == 0 and metrics["stated_label_agreement"] == 1
    registration = summaries["experiment-reasoningrec-k8-s42"]["registration"]
    assert registration["alias"] == "champion"
    # The slice registers under its own model name, never over a paper run's champion.
    assert registration["registered_model"] == "reasoningrec-slice-fashion"
    work = params.work_dir("fashion")
    assert (work / "llm" / "descriptions.parquet").is_file() and (work / "compare" / "auc_vs_k.png").is_file()
    assert any("up to date" in line for line in lines)


def test_the_summary_names_the_figures_and_next_steps(main_job):
    params, first, _, _ = main_job
    text = format_summary(first, params)
    assert "test AUC" in text and "reasoningrec ui" in text and "champion" in text
    assert "stated label = scored label 1.000" in text
    assert text.count("example (user") == 2 and "Prediction:" in text
