"""dvc.yaml is generated from the pipeline definition; `dvc repro` runs the main job's slice."""

from __future__ import annotations

import json

import pytest
import yaml
from dvc_support import BIN, REPO, make_project, ran, run

from reasoningrec.dvc_stages import dvc_document, render_dvc_yaml, stage_name
from reasoningrec.pipeline import plan


def test_committed_dvc_yaml_equals_a_fresh_generation(slice_params):
    assert (REPO / "dvc.yaml").read_text(encoding="utf-8") == render_dvc_yaml(slice_params), (
        "dvc.yaml is stale: run `reasoningrec dvc-yaml`"
    )


def test_every_plan_call_is_a_dvc_stage_declaring_what_the_plan_knows(params):
    document = dvc_document(params)["stages"]
    for dataset in params.pipeline.datasets:
        for call in plan(params, dataset):
            stage = document[stage_name(call)]
            work = f"${{paths.work_dir}}/{dataset}"
            assert stage["cmd"].endswith(f"{call.command()} --params params.yaml")
            assert {f"{work}/{n}" for n in call.input_names()} <= set(stage["deps"])
            assert set(call.stage.code) <= set(stage["deps"])
            outs = {next(iter(o)) if isinstance(o, dict) else o for o in stage["outs"]} | set(stage.get("plots", []))
            assert outs == {f"{work}/{n}" for n in call.output_names()} | {f"{work}/.completion/{call.name}.json"}
            assert stage["metrics"] == [{f"${{paths.metrics_dir}}/{dataset}/{call.name}.json": {"cache": False}}]
            if call.stage.persist:
                assert all(
                    isinstance(o, dict) and next(iter(o.values())) == {"persist": True} for o in stage["outs"][:-1]
                )
            if call.stage.raw_input:
                assert stage["cmd"].startswith("REASONINGREC_DATA_DIR=${paths.data_dir} ")
            if call.stage.name == "experiment":
                assert all(p.endswith(".png") for p in stage["plots"])  # image plots render offline


@pytest.mark.data
def test_repro_of_the_slice_then_metrics_exp_and_plots(tmp_path, shared_data, tiny_model_dir):
    project, env = make_project(tmp_path / "project", shared_data, tiny_model_dir)
    dvc = str(BIN / "dvc")
    first = run([dvc, "repro"], project, env)
    stages = yaml.safe_load((project / "dvc.yaml").read_text())["stages"]
    assert ran(first) == set(stages)
    second = run([dvc, "repro"], project, env)
    assert ran(second) == set(), second

    shown = run([dvc, "metrics", "show", "--json"], project, env)
    metrics = json.loads(shown)
    values = next(iter(metrics.values()))["data"]
    run_metrics = values["metrics/fashion/experiment-reasoningrec-k8-s42.json"]["data"]
    assert 0 <= run_metrics["test_auc"] <= 1 and "valid_auc" in run_metrics
    assert values["metrics/fashion/prepare.json"]["data"]["users"] == 40

    run(["git", "add", "-A"], project, env)
    run(["git", "commit", "-q", "-m", "main job"], project, env)
    exp = run([dvc, "exp", "run", "-S", "train.lora_r=4"], project, env)
    assert ran(exp) == {"fashion-experiment-reasoningrec-k8-s42", "fashion-compare"}
    table = run([dvc, "exp", "show", "--no-pager", "--csv"], project, env)
    header, *rows = [line.split(",") for line in table.strip().splitlines()]
    auc = next(i for i, name in enumerate(header) if name.split(":")[-1] == "test_auc")
    assert len(rows) >= 2 and all(float(row[auc]) >= 0 for row in rows if row[auc])
    assert "train.lora_r" in header

    plots = json.loads(run([dvc, "plots", "show", "--json"], project, env))["data"]
    assert any(name.endswith("test_roc.png") for name in plots) and any(name.endswith("auc_vs_k.png") for name in plots)
    assert all(entry["type"] == "image" for entries in plots.values() for entry in entries)
    run([dvc, "plots", "show"], project, env)
    page = (project / "dvc_plots" / "index.html").read_text(encoding="utf-8")
    assert page.count("<img") == len(plots)  # the curves are images in the page: no script needed
