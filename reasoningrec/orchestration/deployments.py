"""The deployments of ``prefect.yaml``, read once and turned into served Prefect deployments.

Two routes run them (docs/operations.md, "Scheduling"): ``prefect deploy --all`` registers the file's
deployments for a work pool, whose worker runs them from the project folder (the file's pull step);
``reasoningrec serve-flows`` serves them from one process through :func:`serve_deployments`, under
:func:`served_name` (``<name>-served``). A served deployment has no work pool and no pull step; had
it the deployed name, serving would replace the deployed one (or ``prefect deploy`` the served one)
and the other route's runs would crash looking for flow code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from reasoningrec.errors import ConfigError

SERVED_SUFFIX = "-served"
SERVED_TAG = "served"


def served_name(name: str) -> str:
    """The name ``serve-flows`` gives a deployment of ``prefect.yaml``."""
    return f"{name}{SERVED_SUFFIX}"


@dataclass(frozen=True)
class DeploymentSpec:
    """One deployment of ``prefect.yaml``: which flow, with what parameters, on which schedule."""

    name: str
    entrypoint: str
    parameters: dict[str, Any] = field(default_factory=dict)
    crons: tuple[tuple[str, str], ...] = ()  # (cron, timezone)
    tags: tuple[str, ...] = ()
    concurrency_limit: int | None = None


def read_deployments(path: str | Path = "prefect.yaml") -> list[DeploymentSpec]:
    """Parse the deployments of a ``prefect.yaml``; errors name the file and the deployment."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: Prefect project file not found (run from the project root)")
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    specs = []
    for index, entry in enumerate(raw.get("deployments") or []):
        name = entry.get("name")
        entrypoint = entry.get("entrypoint")
        if not name or not entrypoint or ":" not in entrypoint:
            raise ConfigError(f"{path}: deployments[{index}] needs a name and an entrypoint 'file.py:flow'")
        crons = []
        for schedule in entry.get("schedules") or []:
            if "cron" not in schedule:
                raise ConfigError(f"{path}: deployment {name!r}: only cron schedules are supported here")
            if schedule.get("active", True):
                crons.append((str(schedule["cron"]), str(schedule.get("timezone", "UTC"))))
        specs.append(
            DeploymentSpec(
                name=name,
                entrypoint=entrypoint,
                parameters=dict(entry.get("parameters") or {}),
                crons=tuple(crons),
                tags=tuple(entry.get("tags") or ()),
                concurrency_limit=entry.get("concurrency_limit"),
            )
        )
    names = [s.name for s in specs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"{path}: duplicate deployment names {duplicates}")
    return specs


def build_deployments(specs: list[DeploymentSpec]) -> list[Any]:
    """Load each spec's flow and make a served deployment of it (``Flow.to_deployment``), named
    :func:`served_name` and tagged ``served``."""
    from prefect.client.schemas.schedules import CronSchedule
    from prefect.flows import load_flow_from_entrypoint

    deployments = []
    for spec in specs:
        flow = load_flow_from_entrypoint(spec.entrypoint)
        deployments.append(
            flow.to_deployment(
                name=served_name(spec.name),
                parameters=spec.parameters,
                schedules=[CronSchedule(cron=cron, timezone=tz) for cron, tz in spec.crons],
                tags=[*spec.tags, SERVED_TAG],
                concurrency_limit=spec.concurrency_limit,
            )
        )
    return deployments


def serve_deployments(specs: list[DeploymentSpec]) -> None:
    """Serve the deployments until interrupted (runs scheduled and triggered flow runs locally)."""
    from prefect import serve

    serve(*build_deployments(specs))
