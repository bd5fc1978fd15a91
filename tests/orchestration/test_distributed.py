"""The sharded synthesis on real distributed engines: a local Dask cluster (two worker processes) and a
local Ray instance, each giving exactly the outputs of the thread runner on the same real data."""

from __future__ import annotations

import pandas as pd
import pytest
from orchestration_support import project_params, task_states

OUTPUTS = ("descriptions.parquet", "profiles.parquet", "reasoning.parquet")
SHARDED = ("describe", "profile", "reason")


def _synthesize(folder, shared_data, tiny_model_dir, **orchestration) -> tuple[dict[str, pd.DataFrame], dict]:
    """The plan through synthesis on 6 ML-100K users, the LLM stages on 2 shards; outputs and task states."""
    from reasoningrec.orchestration.flows import pipeline

    folder.mkdir()
    params = project_params(
        folder,
        shared_data,
        tiny_model_dir,
        prepare={"max_users": 6},
        describe={"limit": None, "max_new_tokens": 4},
        orchestration={"max_workers": 2, "llm_retries": 0, **orchestration},
    )
    state = pipeline("ml100k", str(params), through="synthesis", shards=2, return_state=True)
    assert state.is_completed(), state.message
    work = folder / "work" / "ml100k"
    return {name: pd.read_parquet(work / name) for name in OUTPUTS}, task_states(state.state_details.flow_run_id)


def _same(outputs: dict[str, pd.DataFrame], reference: dict[str, pd.DataFrame]) -> None:
    for name, frame in reference.items():
        pd.testing.assert_frame_equal(outputs[name], frame, obj=name)
        assert len(frame) > 0, name


def test_runner_settings_reach_the_dask_and_ray_runners():
    from reasoningrec.config import OrchestrationConfig
    from reasoningrec.orchestration.runners import make_task_runner

    pytest.importorskip("prefect_dask")
    local = make_task_runner(OrchestrationConfig(task_runner="dask", max_workers=3))
    assert type(local).__name__ == "DaskTaskRunner" and local.address is None
    assert local.cluster_kwargs == {"n_workers": 3, "threads_per_worker": 1}
    joined = make_task_runner(OrchestrationConfig(task_runner="dask", address="tcp://scheduler:8786"))
    assert joined.address == "tcp://scheduler:8786"
    if __import__("importlib").util.find_spec("prefect_ray"):
        ray = make_task_runner(OrchestrationConfig(task_runner="ray", max_workers=2))
        assert ray.address is None and ray.init_kwargs["num_cpus"] == 2 and not ray.init_kwargs["include_dashboard"]
        assert make_task_runner(OrchestrationConfig(task_runner="ray", address="ray://head:10001")).address == (
            "ray://head:10001"
        )


@pytest.fixture(scope="module")
def thread_run(prefect_api, shared_data, tiny_model_dir, tmp_path_factory):
    return _synthesize(tmp_path_factory.mktemp("synth") / "thread", shared_data, tiny_model_dir, task_runner="thread")


@pytest.mark.data
def test_sharded_synthesis_on_a_dask_cluster_equals_the_thread_runner(
    thread_run, shared_data, tiny_model_dir, tmp_path
):
    pytest.importorskip("prefect_dask")
    from distributed import Client, LocalCluster, get_task_stream

    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        Client(cluster) as client,
        get_task_stream(client) as stream,
    ):
        outputs, states = _synthesize(
            tmp_path / "dask", shared_data, tiny_model_dir, task_runner="dask", address=cluster.scheduler_address
        )
        workers = set(client.scheduler_info()["workers"])
    ran_on = [(task["key"], task["worker"]) for task in stream.data]  # (collected when the stream closed)
    _same(outputs, thread_run[0])
    for stage in SHARDED:
        assert states[f"{stage}-ml100k"] == ["Completed", "Completed"], states
    # Every shard task of the three stages ran in a worker process of the cluster, and both workers worked.
    assert len(ran_on) >= 2 * len(SHARDED), ran_on
    assert len(workers) == 2 and {worker for _, worker in ran_on} == workers


@pytest.mark.data
@pytest.mark.slow  # ~90 s here: each sharded stage starts (and stops) a local cluster of its own
def test_dask_runner_starts_its_own_local_cluster_when_no_address_is_given(
    thread_run, shared_data, tiny_model_dir, tmp_path
):
    pytest.importorskip("prefect_dask")
    outputs, states = _synthesize(tmp_path / "dask-own", shared_data, tiny_model_dir, task_runner="dask")
    _same(outputs, thread_run[0])
    assert states["reason-ml100k"] == ["Completed", "Completed"]


@pytest.mark.data
@pytest.mark.slow  # ~70 s here: a local Ray starts for each sharded stage
def test_sharded_synthesis_on_ray_equals_the_thread_runner(thread_run, shared_data, tiny_model_dir, tmp_path):
    pytest.importorskip("prefect_ray")
    ray = pytest.importorskip("ray")

    outputs, states = _synthesize(tmp_path / "ray", shared_data, tiny_model_dir, task_runner="ray")
    assert not ray.is_initialized()  # the runner started its own local Ray and shut it down
    _same(outputs, thread_run[0])
    for stage in SHARDED:
        assert states[f"{stage}-ml100k"] == ["Completed", "Completed"], states
