"""The Prefect task runner named in ``orchestration.task_runner``.

``thread`` and ``process`` ship with Prefect. ``dask`` and ``ray`` need the optional integrations
(the extras ``reasoningrec[distributed]`` / ``reasoningrec[ray]``: prefect-dask / prefect-ray), imported
only when chosen. With ``orchestration.address`` they join that cluster; without, each sharded stage
starts a local one of ``max_workers`` worker processes (Dask) or CPUs (Ray) and stops it after.
"""

from __future__ import annotations

import importlib
from typing import Any

from reasoningrec.config import OrchestrationConfig
from reasoningrec.errors import MissingDependency

_OPTIONAL = {
    "dask": ("prefect_dask", "DaskTaskRunner", "prefect-dask"),
    "ray": ("prefect_ray", "RayTaskRunner", "prefect-ray"),
}


def _optional_runner(kind: str) -> Any:
    module_name, class_name, package = _OPTIONAL[kind]
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise MissingDependency(
            f"orchestration.task_runner is {kind!r}, which needs {package}: pip install {package} "
            f"(the extra reasoningrec[{'distributed' if kind == 'dask' else 'ray'}]), "
            f"or set orchestration.task_runner: thread"
        ) from None
    return getattr(module, class_name)


def make_task_runner(config: OrchestrationConfig) -> Any:
    """A fresh task runner for one flow run, built from the settings."""
    if config.task_runner == "thread":
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner(max_workers=config.max_workers)
    if config.task_runner == "process":
        from prefect.task_runners import ProcessPoolTaskRunner

        return ProcessPoolTaskRunner(max_workers=config.max_workers)
    runner = _optional_runner(config.task_runner)
    if config.task_runner == "dask":
        if config.address:
            return runner(address=config.address)
        return runner(cluster_kwargs={"n_workers": config.max_workers, "threads_per_worker": 1})
    if config.address:
        return runner(address=config.address)
    # A local Ray of max_workers CPUs; no dashboard (it is a separate web service, and slow to start).
    return runner(init_kwargs={"num_cpus": config.max_workers, "include_dashboard": False})
