"""Prefect flows over the plan: real stages, final states, the completion rule, retries, fan-out."""

from __future__ import annotations

import json
import textwrap

import pandas as pd
import pytest
from orchestration_support import REPO_ROOT, project_params, task_states

from reasoningrec.errors import DataError, MissingDependency
from reasoningrec.orchestration.retry import is_out_of_memory, retry_condition
from reasoningrec.orchestration.runners import make_task_runner

pytest.importorskip("prefect")


def _records(work):
    return {p.name: json.loads(p.read_text())["finished"] for p in (work / ".completion").glob("*.json")}


@pytest.mark.data
def test_pipeline_flow_runs_the_plan_and_skips_what_is_done(prefect_api, shared_data, tiny_model_dir, tmp_path):
    from reasoningrec.orchestration.flows import pipeline

    params = project_params(tmp_path, shared_data, tiny_model_dir, prepare={"max_users": 20})
    state = pipeline("fashion", str(params), through="synthesis", return_state=True)
    assert state.is_completed(), state.message
    result = state.result()
    assert list(result) == [
        "ingest",
        "validate_interactions",
        "prepare",
        "validate_samples",
        "import_texts",
        "describe-llm",
        "vocabulary",
    ]
    assert result["prepare"]["users"] == 20
    assert set(task_states(state.state_details.flow_run_id)) == {
        f"{s}-fashion"
        for s in (
            "ingest",
            "validate_interactions",
            "prepare",
            "validate_samples",
            "import_texts",
            "describe",
            "vocabulary",
        )
    }
    work = tmp_path / "work" / "fashion"
    first = _records(work)

    again = pipeline("fashion", str(params), through="synthesis", return_state=True)
    assert again.is_completed() and again.result() == result
    assert _records(work) == first  # nothing ran again: every record still the first run's
    # A changed setting re-runs exactly the calls that read it, and what follows them.
    changed = pipeline("fashion", str(params), through="data", overrides={"prepare": {"max_users": 15}})
    assert changed["prepare"]["users"] == 15
    now = _records(work)
    assert now["ingest.json"] == first["ingest.json"] and now["prepare.json"] != first["prepare.json"]


@pytest.mark.data
def test_sharded_synthesis_equals_the_unsharded_run(prefect_api, shared_data, tiny_model_dir, tmp_path):
    from reasoningrec.orchestration.flows import pipeline

    outputs = {}
    for shards in (1, 3):
        folder = tmp_path / f"shards{shards}"
        folder.mkdir()
        params = project_params(
            folder,
            shared_data,
            tiny_model_dir,
            prepare={"max_users": 12},
            describe={"limit": None, "max_new_tokens": 4},
            orchestration={"task_runner": "thread", "max_workers": 3, "llm_retries": 0},
        )
        state = pipeline("ml100k", str(params), through="synthesis", shards=shards, return_state=True)
        assert state.is_completed(), state.message
        work = folder / "work" / "ml100k"
        outputs[shards] = {
            name: pd.read_parquet(work / name)
            for name in ("descriptions.parquet", "profiles.parquet", "reasoning.parquet")
        }
        if shards == 3:
            states = task_states(state.state_details.flow_run_id)
            assert states["describe-ml100k"] == ["Completed"] * 3 and states["merge-describe"] == ["Completed"]
            assert len(list((work / ".shards" / "profile").iterdir())) == 3
            samples = pd.read_parquet(work / "samples.parquet")
            users = list(dict.fromkeys(samples["user_id"].astype(str)))
            assert outputs[3]["profiles.parquet"]["user_id"].tolist() == users  # samples' order, not the shards'
    for name, frame in outputs[1].items():
        pd.testing.assert_frame_equal(outputs[3][name], frame, check_like=False), name


TOY = """
from pathlib import Path

def out_of_memory(params, dataset, out_dir):
    with open(Path(out_dir) / "attempts.log", "a") as log:
        log.write("x\\n")
    raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

def flaky(params, dataset, out_dir):
    path = Path(out_dir) / "attempts.log"
    with open(path, "a") as log:
        log.write("x\\n")
    if len(path.read_text().split()) < 2:
        raise ConnectionError("server restarting")
    (Path(out_dir) / "flaky.json").write_text("{}")
    return {"ok": True}
"""


def test_oom_is_never_retried_but_transient_errors_are(prefect_api, tmp_path, monkeypatch):
    from prefect import flow

    from reasoningrec import completion, pipeline
    from reasoningrec.orchestration.tasks import gpu_task, llm_task

    (tmp_path / "toy_stages.py").write_text(textwrap.dedent(TOY))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(completion, "require_upstream", lambda *args: None)  # toy calls have no upstream
    stages = {
        "oom": pipeline.Stage("oom", "toy_stages:out_of_memory", "training", "gpu", "oom -d {dataset}"),
        "flaky": pipeline.Stage(
            "flaky", "toy_stages:flaky", "synthesis", "llm", "flaky -d {dataset}", outputs=("flaky.json",)
        ),
    }
    monkeypatch.setattr(pipeline.stages, "STAGES", {**pipeline.STAGES, **stages})  # where stage() reads it
    params = tmp_path / "params.yaml"
    params.write_text(f"paths: {{work_dir: {tmp_path / 'work'}}}\ndatasets: {{toy: {{source: table, path: x}}}}\n")
    work = tmp_path / "work" / "toy"
    work.mkdir(parents=True)

    @flow(name="gpu-flow")
    def gpu_flow():
        return gpu_task.with_options(retry_delay_seconds=0)("oom", "toy", str(params), return_state=True)

    state = gpu_flow(return_state=True)
    assert state.is_failed()
    with pytest.raises(RuntimeError, match="CUDA out of memory"):
        state.result()
    assert len((work / "attempts.log").read_text().split()) == 1  # retries=1, yet one attempt
    (work / "attempts.log").unlink()

    @flow(name="llm-flow")
    def llm_flow():
        return llm_task.with_options(retry_delay_seconds=0)("flaky", "toy", str(params))

    assert llm_flow() == {"ok": True}
    assert len((work / "attempts.log").read_text().split()) == 2  # failed once, retried once


def test_retry_condition_reads_the_failed_state():
    from prefect.states import Failed

    torch = pytest.importorskip("torch")
    assert retry_condition(None, None, Failed(data=torch.OutOfMemoryError("CUDA out of memory"))) is False
    assert retry_condition(None, None, Failed(data=RuntimeError("CUDA out of memory. Tried to allocate"))) is False
    assert retry_condition(None, None, Failed(data=DataError("x.parquet", "bad", row=3))) is False
    assert retry_condition(None, None, Failed(data=ConnectionError("reset by peer"))) is True
    wrapped = RuntimeError("stage failed")
    wrapped.__cause__ = torch.OutOfMemoryError("oom")
    assert is_out_of_memory(wrapped)
    assert not is_out_of_memory(ValueError("memory of the user"))


def test_unknown_task_runner_package_names_the_install_command():
    from reasoningrec.config import OrchestrationConfig

    for kind, package in (("dask", "prefect-dask"), ("ray", "prefect-ray")):
        try:
            __import__(package.replace("-", "_"))
        except ImportError:
            with pytest.raises(MissingDependency, match=f"pip install {package}"):
                make_task_runner(OrchestrationConfig(task_runner=kind))
    runner = make_task_runner(OrchestrationConfig(task_runner="thread", max_workers=5))
    assert type(runner).__name__ == "ThreadPoolTaskRunner" and runner._max_workers == 5


def test_prefect_yaml_deployments_cover_every_dataset_and_build(params):
    from reasoningrec.orchestration.deployments import build_deployments, read_deployments, served_name

    specs = read_deployments(REPO_ROOT / "prefect.yaml")
    by_kind = {(s.name.split("-")[0], s.parameters["dataset"]) for s in specs}
    assert by_kind == {(kind, d) for kind in ("nightly", "weekly") for d in params.datasets}
    nightly = next(s for s in specs if s.name.startswith("nightly"))
    assert nightly.crons == (("0 2 * * *", "UTC"),)
    deployments = build_deployments(specs[:1] + specs[-1:])
    for spec, deployment in zip(specs[:1] + specs[-1:], deployments, strict=True):
        # Served under another name than `prefect deploy` gives it: the two routes never replace each other.
        assert deployment.name == served_name(spec.name) != spec.name and deployment.parameters == spec.parameters
        assert "served" in deployment.tags and deployment.work_pool_name is None
        assert deployment.schedules and deployment.schedules[0].schedule.cron == spec.crons[0][0]
        assert "dataset" in deployment._parameter_openapi_schema.required


def test_shards_are_stable_disjoint_and_summaries_merge():
    import hashlib

    from reasoningrec.orchestration.shards import endpoint_overrides, merge_summaries, shard_of, split_frame

    assert shard_of("42", 4) == int(hashlib.sha1(b"42").hexdigest()[:8], 16) % 4
    frame = pd.DataFrame({"user_id": [str(i) for i in range(200)], "x": range(200)})
    parts = split_frame(frame, "user_id", 4)
    assert [len(p) for p in parts] == [sum(shard_of(str(i), 4) == s for i in range(200)) for s in range(4)]
    assert all(len(p) > 20 for p in parts)
    assert sorted(pd.concat(parts)["x"]) == list(range(200))
    merged = merge_summaries(
        [
            {"count": 3, "match_rate": 0.5, "model": "m", "settings": {"t": 0.1}, "examples": ["a"]},
            {"count": 2, "match_rate": 1.0, "model": "m", "settings": {"t": 0.1}, "examples": ["b"]},
        ]
    )
    assert merged == {
        "count": 5,
        "match_rate": 0.75,
        "model": "m",
        "settings": {"t": 0.1},
        "examples": [["a"], ["b"]],
        "shards": 2,
    }
    assert endpoint_overrides("http://a/v1,http://b/v1", 3) == [
        {"llm": {"base_url": u}} for u in ("http://a/v1", "http://b/v1", "http://a/v1")
    ]
