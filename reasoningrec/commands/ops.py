"""CLI commands: operations (the Prefect pipeline and its schedules)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from reasoningrec.app import DatasetOption, LimitOption, ParamsOption, app

PHASES = ("data", "synthesis", "training", "register", "report")


def _flows_package():
    """Import ``flows`` (a folder of the project, not of the installed package) from the current dir."""
    from reasoningrec.errors import ConfigError

    try:
        import flows.pipeline as pipeline_module
    except ModuleNotFoundError as exc:
        if exc.name not in ("flows", "flows.pipeline"):
            raise
        if not (Path.cwd() / "flows" / "pipeline.py").is_file():
            raise ConfigError(f"{Path.cwd()}: no flows/pipeline.py here: run from the project root") from None
        sys.path.insert(0, str(Path.cwd()))
        import flows.pipeline as pipeline_module
    return pipeline_module


@app.command()
def pipeline(
    dataset: DatasetOption,
    params: ParamsOption = None,
    through: Annotated[
        str, typer.Option("--through", help=f"Last phase to run: {' | '.join(PHASES)}.")
    ] = "report",
    max_users: Annotated[int | None, typer.Option("--max-users", help="Prepare only N users (a quick try).")] = None,
    limit: LimitOption = None,
    shards: Annotated[
        int | None, typer.Option("--shards", help="LLM synthesis shards (default: orchestration.shards).")
    ] = None,
    method: Annotated[
        list[str] | None, typer.Option("--method", "-m", help="Methods to train (repeat; default: orchestration).")
    ] = None,
    k: Annotated[list[int] | None, typer.Option("--k", help="K values (repeat; default: records.k_shots).")] = None,
    seed: Annotated[list[int] | None, typer.Option("--seed", help="Seeds (repeat; default: orchestration.seeds).")] = None,
) -> None:
    """Run the Prefect pipeline flow for one dataset; finished stages are served from the task cache."""
    from reasoningrec.errors import ConfigError
    from reasoningrec.logs import disable_telemetry

    if through not in PHASES:
        raise ConfigError(f"--through must be one of {', '.join(PHASES)}, got {through!r}")
    disable_telemetry()
    from reasoningrec.config import PARAMS_ENV, load_params

    params_path = str(params or os.environ.get(PARAMS_ENV) or "params.yaml")

    load_params(params_path).dataset(dataset)  # a clear error before Prefect starts a server
    flow = _flows_package().pipeline
    state = flow(
        dataset, params_path, through, max_users, limit, shards, method or None, k or None, seed or None,
        return_state=True,
    )
    if not state.is_completed():
        typer.echo(f"pipeline {dataset}: {state.name}: {state.message}", err=True)
        raise typer.Exit(1)
    typer.echo(json.dumps(state.result(), indent=2, sort_keys=True, default=str))


@app.command("serve-flows")
def serve_flows(
    prefect_file: Annotated[Path, typer.Option("--prefect-file", help="Deployments file.")] = Path("prefect.yaml"),
    only: Annotated[
        str | None, typer.Option("--only", help="Serve only deployments whose name contains this text.")
    ] = None,
) -> None:
    """Serve the deployments of prefect.yaml (their schedules included) from this process until Ctrl-C."""
    from reasoningrec.errors import ConfigError
    from reasoningrec.logs import disable_telemetry
    from reasoningrec.orchestration.deployments import read_deployments, serve_deployments

    disable_telemetry()
    specs = [s for s in read_deployments(prefect_file) if only is None or only in s.name]
    if not specs:
        raise ConfigError(f"{prefect_file}: no deployment name contains {only!r}")
    _flows_package()  # entrypoints import `flows`
    typer.echo(f"serving {len(specs)} deployment(s): {', '.join(s.name for s in specs)}")
    serve_deployments(specs)
