"""Helpers of the orchestration tests: reading task states from the Prefect API, a params file in tmp."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def task_states(flow_run_id) -> dict[str, list[str]]:
    """Task run name -> state names of every task of a flow run and its subflows, read via the API."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
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


def project_params(tmp_path: Path, shared_data: Path, tiny_model_dir: Path, **sections) -> Path:
    """A params file for real stages in tmp: the repo's datasets, the tiny model, small sizes."""
    import yaml

    raw = yaml.safe_load((REPO_ROOT / "params.yaml").read_text(encoding="utf-8"))
    raw["paths"].update(
        work_dir=str(tmp_path / "work"),
        cache_dir=str(tmp_path / "cache"),
        data_dir=str(shared_data),
        metrics_dir=str(tmp_path / "metrics"),
    )
    raw["validate"]["data_docs"] = False
    raw["llm"].update(backend="hf", model=str(tiny_model_dir), batch_size=4)
    for name in ("describe", "profile", "reason"):
        raw[name]["max_new_tokens"] = 4
    raw["tracking"].update(tracking_uri="none")
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return path
