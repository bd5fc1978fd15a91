"""CLI command: the README's main job."""

from __future__ import annotations

from typing import Annotated

import typer

from reasoningrec.app import ParamsOption, app, params_from


@app.command()
def demo(
    dataset: Annotated[
        str | None, typer.Option("--dataset", "-d", help="Dataset (default: demo.dataset in params.yaml).")
    ] = None,
    full: Annotated[bool, typer.Option("--full", help="Run the dataset's real sizes, not the demo slice.")] = False,
    params_path: ParamsOption = None,
) -> None:
    """Run the whole pipeline end to end on a small real slice (offline, embedded model)."""
    from reasoningrec.demo import format_summary, run_demo
    params = params_from(params_path)
    results = run_demo(params, dataset, full=full)
    print(format_summary(results, params))
