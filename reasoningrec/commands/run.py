"""CLI command: ``reasoningrec run``, the README's main job (the plan of params.yaml, end to end)."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from reasoningrec.app import ForceOption, OverlayOption, ParamsOption, SetOption, app, invocation, params_from


@app.command()
def run(
    dataset: Annotated[
        list[str] | None, typer.Option("--dataset", "-d", help="Dataset(s) to run (default: pipeline.datasets).")
    ] = None,
    through: Annotated[
        str | None, typer.Option("--through", help="Stop after this phase: data | synthesis | training.")
    ] = None,
    params: ParamsOption = None,
    overlay: OverlayOption = None,
    set_: SetOption = None,
    force: ForceOption = False,
) -> None:
    """Run the pipeline of params.yaml (pipeline: section) end to end; finished stages are skipped."""
    from reasoningrec.runner import format_summary, run_plan

    settings = params_from(params, set_, overlay)
    started = time.perf_counter()
    outcomes = run_plan(settings, dataset or None, through=through, force=force, command=invocation())
    typer.echo(format_summary(outcomes, settings, seconds=time.perf_counter() - started))
