"""CLI commands: operations (the Prefect pipeline and its schedules, the generated dvc.yaml)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from reasoningrec.app import DatasetOption, ForceOption, ParamsOption, SetOption, app


@app.command()
def pipeline(
    dataset: DatasetOption,
    params: ParamsOption = None,
    through: Annotated[
        str, typer.Option("--through", help="Last phase to run: data | synthesis | training.")
    ] = "training",
    max_users: Annotated[
        int | None, typer.Option("--max-users", help="Prepare only N users: --set prepare.max_users=N.")
    ] = None,
    shards: Annotated[
        int | None, typer.Option("--shards", help="LLM synthesis shards (default: orchestration.shards).")
    ] = None,
    method: Annotated[
        list[str] | None, typer.Option("--method", "-m", help="Methods to run (repeat; default: pipeline.methods).")
    ] = None,
    k: Annotated[list[int] | None, typer.Option("--k", help="K values (repeat; default: pipeline.k_shots).")] = None,
    seed: Annotated[list[int] | None, typer.Option("--seed", help="Seeds (repeat; default: pipeline.seeds).")] = None,
    report: Annotated[bool, typer.Option("--report", help="Rewrite docs/results.md at the end.")] = False,
    set_: SetOption = None,
    force: ForceOption = False,
) -> None:
    """Run the dataset's plan as a Prefect flow; stages whose completion records match are skipped."""
    from reasoningrec.config import params_path, parse_assignments, read_params
    from reasoningrec.errors import ConfigError
    from reasoningrec.logs import disable_telemetry

    if through not in ("data", "synthesis", "training"):
        raise ConfigError(f"--through must be one of data, synthesis, training; got {through!r}")
    sets = [*(set_ or []), *([f"prepare.max_users={max_users}"] if max_users is not None else [])]
    overrides = parse_assignments(sets) or None
    path = str(params_path(params))
    read_params(path, overrides=overrides).dataset(dataset)  # a clear error before Prefect starts a server
    disable_telemetry()
    from reasoningrec.orchestration.flows import pipeline as flow

    state = flow(
        dataset,
        path,
        through,
        method or None,
        k or None,
        seed or None,
        shards,
        overrides,
        force,
        report=report,
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
    """Serve the deployments of prefect.yaml (their schedules included) from this process until Ctrl-C,
    named <name>-served (the names `prefect deploy` uses stay the work pool's)."""
    from reasoningrec.errors import ConfigError
    from reasoningrec.logs import disable_telemetry
    from reasoningrec.orchestration.deployments import read_deployments, serve_deployments, served_name

    disable_telemetry()
    specs = [s for s in read_deployments(prefect_file) if only is None or only in s.name]
    if not specs:
        raise ConfigError(f"{prefect_file}: no deployment name contains {only!r}")
    typer.echo(f"serving {len(specs)} deployment(s): {', '.join(served_name(s.name) for s in specs)}")
    serve_deployments(specs)


@app.command("dvc-yaml")
def dvc_yaml(
    params: ParamsOption = None,
    out: Annotated[Path, typer.Option("--out", help="Where to write it.")] = Path("dvc.yaml"),
    check: Annotated[bool, typer.Option("--check", help="Only check that the file equals a fresh generation.")] = False,
) -> None:
    """Write dvc.yaml from the pipeline definition (the plan of params.yaml's pipeline: section)."""
    from reasoningrec.config import params_path, read_params
    from reasoningrec.dvc_stages import render_dvc_yaml
    from reasoningrec.errors import ConfigError
    from reasoningrec.io import atomic_open

    text = render_dvc_yaml(read_params(params_path(params)))
    if check:
        if not out.is_file() or out.read_text(encoding="utf-8") != text:
            raise ConfigError(f"{out} differs from the pipeline definition: run `reasoningrec dvc-yaml`")
        typer.echo(f"{out}: up to date with the pipeline definition")
        return
    with atomic_open(out) as handle:
        handle.write(text)
    typer.echo(f"wrote {out}")
