"""The Prefect task runner named in ``orchestration.task_runner``.

``thread`` and ``process`` ship with Prefect. ``dask`` and ``ray`` need the optional integrations
(``pip install prefect-dask`` / ``prefect-ray``), imported only when chosen.
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
            f"(or set orchestration.task_runner: thread)"
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
    return runner(address=config.address) if config.address else runner()
