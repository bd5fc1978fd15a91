"""Prefect flows: run through a real (temporary) Prefect API, final states, caching, retries, fan-out.

PREFECT_HOME points at a temporary folder before prefect is imported, so no test touches the
user's Prefect profile, database or result storage.
"""

from __future__ import annotations

import os
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import pytest

_HOME = tempfile.mkdtemp(prefix="reasoningrec-prefect-")
os.environ["PREFECT_HOME"] = _HOME
os.environ["PREFECT_LOCAL_STORAGE_PATH"] = str(Path(_HOME) / "storage")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # flows/ is a top-level folder of the project, like tests/
    sys.path.insert(0, str(REPO))

prefect = pytest.importorskip("prefect")

from prefect import flow  # noqa: E402
from prefect.client.orchestration import get_client  # noqa: E402
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId  # noqa: E402
from prefect.states import Failed  # noqa: E402
from prefect.testing.utilities import prefect_test_harness  # noqa: E402

from reasoningrec.errors import DataError, MissingDependency  # noqa: E402
from reasoningrec.orchestration import stages  # noqa: E402
from reasoningrec.orchestration.retry import is_out_of_memory, retry_condition  # noqa: E402
from reasoningrec.orchestration.runners import make_task_runner  # noqa: E402
from reasoningrec.orchestration.stages import StageSpec  # noqa: E402


@pytest.fixture(scope="session")
def prefect_api():
    """One temporary Prefect server + SQLite database for the whole session."""
    with prefect_test_harness(server_startup_timeout=90):
        yield


def task_states(flow_run_id) -> dict[str, list[str]]:
    """Task run name -> state names of every task of a flow run and its subflows, read via the API."""
    from prefect.utilities.asyncutils import run_coro_as_sync

    async def read():
        async with get_client() as client:
            runs, placeholders = {flow_run_id}, set()
            for run in sorted(await client.read_flow_runs(), key=lambda r: r.created):
                if run.parent_task_run_id is not None:
                    parent = await client.read_task_run(run.parent_task_run_id)
                    if parent.flow_run_id in runs:
                        runs.add(run.id)
                        placeholders.add(run.parent_task_run_id)  # the task standing for a subflow
            tasks = await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=list(runs))))
            states: dict[str, list[str]] = {}
            for task_run in tasks:
                if task_run.id not in placeholders and task_run.state is not None:
                    states.setdefault(task_run.name, []).append(task_run.state.name)
            return states

    return run_coro_as_sync(read())


def flow_run_state(flow_run_id) -> str:
    from prefect.utilities.asyncutils import run_coro_as_sync

    async def read():
        async with get_client() as client:
            return (await client.read_flow_run(flow_run_id)).state.name

    return run_coro_as_sync(read())


# --------------------------------------------------------------------------------------------
# A trivial stage registered beside the real ones: exercises the task machinery on its own.
# --------------------------------------------------------------------------------------------

TOY_MODULE = '''
import json, threading, time
from pathlib import Path

def toy(params, dataset, out_dir, shout=False):
    out_dir = Path(out_dir)
    text = (out_dir / "in.txt").read_text()
    text = text.upper() if shout else text
    (out_dir / "out.txt").write_text(f"{text}|seed={params.prepare.seed}")
    with open(out_dir.parent / "calls.log", "a") as log:
        log.write(f"{dataset}\\n")
    return {"chars": len(text)}

def toy_shard(params, dataset, out_dir, limit=None):
    import pandas as pd
    out_dir = Path(out_dir)
    time.sleep(0.3)  # long enough for the shards to overlap when they run concurrently
    users = pd.read_parquet(out_dir / "samples.parquet")
    frame = pd.DataFrame({"user_id": users["user_id"], "profile": "p-" + users["user_id"],
                          "server": params.llm.base_url, "thread": threading.get_ident()})
    frame.to_parquet(out_dir / "profiles.parquet", index=False)
    (out_dir / "profile.json").write_text(json.dumps({"users": len(frame), "model": "toy"}))
    return {"users": len(frame)}

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
    return {"ok": True}
'''


@pytest.fixture
def toy_project(tmp_path, monkeypatch):
    """A params file, a work dir with one input, and toy stages importable as ``toy_stages``."""
    (tmp_path / "toy_stages.py").write_text(textwrap.dedent(TOY_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    work = tmp_path / "work"
    (work / "toy").mkdir(parents=True)
    (work / "toy" / "in.txt").write_text("hello")
    params = tmp_path / "params.yaml"
    params.write_text(textwrap.dedent(f"""
        paths: {{work_dir: {work}, data_dir: {tmp_path}}}
        datasets:
          toy: {{source: table, path: in.txt}}
        prepare: {{seed: 1}}
        llm: {{base_url: [http://gpu0:8000/v1, http://gpu1:8000/v1]}}
        orchestration: {{task_runner: thread, max_workers: 3, shards: 3, retry_backoff_s: 0.01}}
    """))
    toy_specs = {
        "toy": StageSpec("toy", "toy_stages:toy", inputs=("in.txt",), outputs=("out.txt",), sections=("prepare",)),
        "profile": StageSpec(
            "profile", "toy_stages:toy_shard", inputs=("samples.parquet",),
            outputs=("profiles.parquet", "profile.json"), sections=("profile",), shard_key="user_id",
        ),
        "oom": StageSpec("oom", "toy_stages:out_of_memory"),
        "flaky": StageSpec("flaky", "toy_stages:flaky"),
    }
    monkeypatch.setattr(stages, "STAGES", {**stages.STAGES, **toy_specs})
    return tmp_path


def _calls(project: Path) -> int:
    log = project / "work" / "calls.log"
    return len(log.read_text().split()) if log.exists() else 0


def test_trivial_stage_runs_through_the_api_and_is_cached_by_content(prefect_api, toy_project):
    from flows.tasks import call_stage, data_stage

    params = str(toy_project / "params.yaml")

    @flow(name="toy-flow")
    def toy_flow(shout: bool = False):
        return call_stage(data_stage, "toy", params, "toy", options={"shout": shout})

    first = toy_flow(return_state=True)
    assert first.is_completed()
    assert flow_run_state(first.state_details.flow_run_id) == "Completed"
    assert task_states(first.state_details.flow_run_id) == {"toy-toy": ["Completed"]}
    assert (toy_project / "work" / "toy" / "out.txt").read_text() == "hello|seed=1"

    second = toy_flow(return_state=True)
    assert task_states(second.state_details.flow_run_id) == {"toy-toy": ["Cached"]}
    assert _calls(toy_project) == 1

    # Changed input bytes, a changed setting of its section, a deleted output, a changed option:
    # each runs the stage again.
    (toy_project / "work" / "toy" / "in.txt").write_text("hello!")
    assert task_states(toy_flow(return_state=True).state_details.flow_run_id) == {"toy-toy": ["Completed"]}
    (toy_project / "params.yaml").write_text((toy_project / "params.yaml").read_text().replace("seed: 1", "seed: 2"))
    toy_flow()
    assert (toy_project / "work" / "toy" / "out.txt").read_text() == "hello!|seed=2"
    (toy_project / "work" / "toy" / "out.txt").unlink()
    toy_flow()
    toy_flow(shout=True)
    assert _calls(toy_project) == 5
    assert (toy_project / "work" / "toy" / "out.txt").read_text() == "HELLO!|seed=2"


def test_oom_is_never_retried_but_transient_errors_are(prefect_api, toy_project):
    from flows.tasks import gpu_stage, llm_stage

    params = str(toy_project / "params.yaml")
    work = toy_project / "work" / "toy"

    @flow(name="gpu-flow")
    def gpu_flow():
        return gpu_stage.with_options(retry_delay_seconds=0)("oom", params, "toy", return_state=True)

    state = gpu_flow(return_state=True)
    assert state.is_failed()
    with pytest.raises(RuntimeError, match="CUDA out of memory"):
        state.result()
    assert len((work / "attempts.log").read_text().split()) == 1  # retries=1, yet one attempt
    (work / "attempts.log").unlink()

    @flow(name="llm-flow")
    def llm_flow():
        return llm_stage.with_options(retry_delay_seconds=0)("flaky", params, "toy")

    assert llm_flow() == {"ok": True}
    assert len((work / "attempts.log").read_text().split()) == 2  # failed once, retried once


def test_retry_condition_reads_the_failed_state():
    torch = pytest.importorskip("torch")
    assert retry_condition(None, None, Failed(data=torch.OutOfMemoryError("CUDA out of memory"))) is False
    assert retry_condition(None, None, Failed(data=RuntimeError("CUDA out of memory. Tried to allocate"))) is False
    assert retry_condition(None, None, Failed(data=DataError("x.parquet", "bad", row=3))) is False
    assert retry_condition(None, None, Failed(data=ConnectionError("reset by peer"))) is True
    wrapped = RuntimeError("stage failed")
    wrapped.__cause__ = torch.OutOfMemoryError("oom")
    assert is_out_of_memory(wrapped)
    assert not is_out_of_memory(ValueError("memory of the user"))


def test_synthesis_fans_out_over_shards_and_servers(prefect_api, toy_project):
    import pandas as pd

    from flows.synthesize import synthesize_stage

    work = toy_project / "work" / "toy"
    users = [f"u{i}" for i in range(30)]
    pd.DataFrame({"user_id": users, "split": "train"}).to_parquet(work / "samples.parquet", index=False)
    runner = make_task_runner(stages.load_stage_params(toy_project / "params.yaml").orchestration)
    fan_out = synthesize_stage.with_options(task_runner=runner)
    params = str(toy_project / "params.yaml")

    started = time.perf_counter()
    state = fan_out("profile", "toy", params, return_state=True)
    elapsed = time.perf_counter() - started
    summary = state.result()
    assert summary == {"users": 30, "model": "toy", "shards": 3}

    merged = pd.read_parquet(work / "profiles.parquet")
    assert merged["user_id"].tolist() == users  # the order of samples.parquet, not of the shards
    assert set(merged["server"]) == {"http://gpu0:8000/v1", "http://gpu1:8000/v1"}
    assert merged["thread"].nunique() > 1 and threading.get_ident() not in set(merged["thread"])
    assert elapsed < 30

    states = task_states(state.state_details.flow_run_id)
    assert states["profile-toy"] == ["Completed"] * 3
    rerun = fan_out("profile", "toy", params, return_state=True)
    assert task_states(rerun.state_details.flow_run_id)["profile-toy"] == ["Cached"] * 3


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


# --------------------------------------------------------------------------------------------
# The real stages on a real slice (skips until the stage modules exist).
# --------------------------------------------------------------------------------------------


@pytest.mark.data
def test_ingest_validate_on_movielens_slice(prefect_api, shared_data, tmp_path, monkeypatch):
    for module in ("reasoningrec.data.ingest", "reasoningrec.data.prepare", "reasoningrec.validation"):
        pytest.importorskip(module, reason=f"{module} not written yet")
    import json

    from typer.testing import CliRunner

    from flows.pipeline import pipeline
    from reasoningrec.cli import app  # registers every command

    params = tmp_path / "params.yaml"
    params.write_text(
        (REPO / "params.yaml").read_text().replace("work_dir: data/work", f"work_dir: {tmp_path / 'work'}")
    )
    monkeypatch.setenv("REASONINGREC_DATA_DIR", str(shared_data))
    # First run through the CLI command (`reasoningrec pipeline`), the second through the flow itself.
    result = CliRunner().invoke(
        app, ["pipeline", "-d", "ml100k", "--params", str(params), "--through", "data", "--max-users", "60"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout[result.stdout.index("{"):])["data"]
    assert summary["ingest"]["users"] == 943 and summary["ingest"]["rows"] == 100_000
    assert summary["validate_interactions"]["success"] and summary["validate_samples"]["success"]
    assert (tmp_path / "work" / "ml100k" / "samples.parquet").exists()

    second = pipeline("ml100k", str(params), through="data", max_users=60, return_state=True)
    assert second.is_completed() and flow_run_state(second.state_details.flow_run_id) == "Completed"
    states = task_states(second.state_details.flow_run_id)
    expected = {"ingest-ml100k", "validate_interactions-ml100k", "prepare-ml100k", "validate_samples-ml100k"}
    assert set(states) == expected
    assert all(s == ["Cached"] for s in states.values()), states
    assert second.result()["data"]["ingest"] == summary["ingest"]


def test_prefect_yaml_deployments_cover_every_dataset_and_build(params):
    from reasoningrec.orchestration.deployments import build_deployments, read_deployments

    specs = read_deployments(REPO / "prefect.yaml")
    by_kind = {(s.name.split("-")[0], s.parameters["dataset"]) for s in specs}
    assert by_kind == {(kind, d) for kind in ("nightly", "weekly") for d in params.datasets}
    nightly = next(s for s in specs if s.name.startswith("nightly"))
    assert nightly.crons == (("0 2 * * *", "UTC"),)
    deployments = build_deployments(specs[:1] + specs[-1:])
    for spec, deployment in zip(specs[:1] + specs[-1:], deployments, strict=True):
        assert deployment.name == spec.name and deployment.parameters == spec.parameters
        assert deployment.schedules and deployment.schedules[0].schedule.cron == spec.crons[0][0]
        assert "dataset" in deployment._parameter_openapi_schema.required


# --------------------------------------------------------------------------------------------
# Pure helpers behind the flows.
# --------------------------------------------------------------------------------------------


def test_shards_are_stable_disjoint_and_summaries_merge():
    import hashlib

    import pandas as pd

    from reasoningrec.orchestration.shards import merge_summaries, shard_of, split_frame

    assert shard_of("42", 4) == int(hashlib.sha1(b"42").hexdigest()[:8], 16) % 4
    frame = pd.DataFrame({"user_id": [str(i) for i in range(200)], "x": range(200)})
    parts = split_frame(frame, "user_id", 4)
    assert [len(p) for p in parts] == [sum(shard_of(str(i), 4) == s for i in range(200)) for s in range(4)]
    assert all(len(p) > 20 for p in parts)
    assert sorted(pd.concat(parts)["x"]) == list(range(200))
    merged = merge_summaries([
        {"count": 3, "match_rate": 0.5, "model": "m", "settings": {"t": 0.1}, "examples": ["a"]},
        {"count": 2, "match_rate": 1.0, "model": "m", "settings": {"t": 0.1}, "examples": ["b"]},
    ])
    assert merged == {"count": 5, "match_rate": 0.75, "model": "m", "settings": {"t": 0.1},
                      "examples": [["a"], ["b"]], "shards": 2}


def test_plans_and_experiment_grid_follow_params(params):
    assert stages.synthesis_plan(params, "beauty") == ["import_texts"]
    assert stages.synthesis_plan(params, "ml1m") == ["import_texts", "profile", "reason"]
    assert stages.synthesis_plan(params, "ml100k") == ["describe", "profile", "reason"]
    grid = stages.experiment_grid(params, methods=["tallrec", "zeroshot-vanilla"], k_shots=[64, 128], seeds=[1, 2])
    assert grid == [("tallrec", 64, 1), ("tallrec", 64, 2), ("tallrec", 128, 1), ("tallrec", 128, 2),
                    ("zeroshot-vanilla", 0, 1), ("zeroshot-vanilla", 0, 2)]


def test_stage_errors_name_what_is_missing(toy_project, monkeypatch):
    from reasoningrec.errors import ConfigError

    params = toy_project / "params.yaml"
    monkeypatch.setitem(stages.STAGES, "ghost", StageSpec("ghost", "reasoningrec.no_such_stage:run_ghost"))
    with pytest.raises(MissingDependency, match="reasoningrec.no_such_stage"):
        stages.run_stage("ghost", params, "toy")
    with pytest.raises(ConfigError, match="takes no option"):
        stages.run_stage("toy", params, "toy", options={"colour": "red"})
    with pytest.raises(ConfigError, match="unknown stage 'tarin'"):
        stages.run_stage("tarin", params, "toy")
    with pytest.raises(ConfigError, match="unknown dataset 'nope'"):
        stages.run_stage("toy", params, "nope")
