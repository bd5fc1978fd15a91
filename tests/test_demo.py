"""The README's main job, end to end on real Fashion data, with the tiny model standing in for SmolLM2.

Every stage runs for real (ingest, GX validation, prepare, import of the authors' texts, embedded-
style synthesis through the local HF backend, records, LoRA training, scoring, explanations,
BERTScore, MLflow run, registry); only the model is the tiny random one so the test takes seconds.
"""

from __future__ import annotations

import pytest
from mlflow_support import template_store, tracking_params

from reasoningrec.demo import demo_params, format_summary, run_demo


@pytest.fixture(scope="module")
def demo_result(shared_data, tiny_model_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("demo")
    base = tracking_params(
        tmp,
        template_store(tmp_path_factory),
        paths={"work_dir": str(tmp / "work"), "cache_dir": str(tmp / "cache"), "data_dir": str(shared_data)},
        demo={"dataset": "fashion", "max_users": 40, "synthesize_items": 2, "k_shots": 8, "valid_size": 8,
              "epochs": 1, "explain_limit": 2, "explain_max_new_tokens": 8, "max_length": 512},
        llm={"backend": "hf", "model": str(tiny_model_dir), "batch_size": 2},
        describe={"max_new_tokens": 8},
        train={"base_model": str(tiny_model_dir), "batch_size": 4},
    )
    from pathlib import Path

    from reasoningrec.config import read_params

    repo = read_params(Path(__file__).resolve().parents[1] / "params.yaml")
    params = base.model_copy(update={"datasets": repo.datasets, "validate_": repo.validate_})
    lines: list[str] = []
    return params, run_demo(params, say=lines.append), lines


def test_demo_runs_every_stage_and_registers_a_champion(demo_result):
    params, result, lines = demo_result
    assert list(result["timings_s"]) == [
        "ingest", "validate interactions", "prepare", "validate samples", "import large-LLM texts",
        "describe 2 items with the embedded model", "build records", "train + evaluate reasoningrec (K=8)",
    ]
    assert result["prepare"]["users"] == 40
    assert result["embedded_describe"]["count"] == 2
    experiment = result["experiment"]
    metrics = experiment.metrics
    assert 0.0 <= metrics["test_auc"] <= 1.0 and 0.0 <= metrics["valid_auc"] <= 1.0  # both classes present
    assert "test_bertscore_f1" in metrics
    assert experiment.registration["alias"] == "champion"
    # The demo registers under its own model name, never over a real dataset's champion.
    assert experiment.registration["registered_model"] == "reasoningrec-demo-fashion"
    work = demo_params(params).work_dir("fashion")
    assert (work / "samples.parquet").is_file() and (work / "records.parquet").is_file()
    assert any("ingest" in line for line in lines)


def test_demo_summary_names_the_next_steps(demo_result):
    params, result, _ = demo_result
    text = format_summary(result, params)
    assert "test AUC" in text and "reasoningrec ui" in text and "champion" in text
