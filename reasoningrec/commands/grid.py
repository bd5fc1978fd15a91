"""CLI command: ``reasoningrec grid``, dataset x method x K x seed on the pipeline's plan."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer

from reasoningrec.app import OverlayOption, ParamsOption, SetOption, app, invocation
from reasoningrec.methods import help_text

ListOption = list[str] | None


@app.command()
def grid(
    datasets: Annotated[
        ListOption,
        typer.Option("--datasets", help="Datasets, comma-separated or repeated (default: pipeline.datasets)."),
    ] = None,
    methods: Annotated[
        ListOption,
        typer.Option(
            "--methods",
            help=f"Methods, comma-separated or repeated (default: all): {help_text()}. "
            "Any baseline named runs the dataset's baselines stage (all of them).",
        ),
    ] = None,
    k: Annotated[ListOption, typer.Option("--k", help="K values (default: pipeline.k_shots).")] = None,
    seeds: Annotated[ListOption, typer.Option("--seeds", help="Seeds (default: pipeline.seeds).")] = None,
    workers: Annotated[
        int,
        typer.Option("--workers", min=0, help="Processes sharing the GPU; 0 runs the jobs one by one in this process."),
    ] = 1,
    deadline_s: Annotated[
        float | None, typer.Option("--deadline-s", help="Start no job after this many seconds.")
    ] = None,
    hard_deadline_s: Annotated[
        float | None,
        typer.Option(
            "--hard-deadline-s", help="End the jobs still running after this many seconds (the next call runs them)."
        ),
    ] = None,
    skip_validation: Annotated[
        bool,
        typer.Option(
            "--skip-validation",
            help="Do not run the Great Expectations gates (a machine without it); "
            "the stages after them run although no gate passed.",
        ),
    ] = False,
    synthesis_batch_size: Annotated[
        int | None,
        typer.Option(
            "--synthesis-batch-size", min=1, help="Prompts per batch of the LLM text stages (default llm.batch_size)."
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="List every call with whether it is up to date or why it would run; run nothing."
        ),
    ] = False,
    log_results: Annotated[
        bool, typer.Option("--log-results", help="Run nothing: log to MLflow the finished runs made with tracking off.")
    ] = False,
    report: Annotated[bool, typer.Option("--report", help="Write the results report at the end.")] = False,
    report_out: Annotated[Path, typer.Option("--report-out", help="Where --report writes.")] = Path("docs/results.md"),
    report_bootstrap: Annotated[
        int, typer.Option("--report-bootstrap", min=0, help="Bootstrap resamples per interval in the report.")
    ] = 1000,
    params: ParamsOption = None,
    overlay: OverlayOption = None,
    set_: SetOption = None,
) -> None:
    """Run dataset x method x K x seed on the pipeline's plan: the data stages, then the experiments and
    baselines on a pool of workers sharing the GPU; calls that are up to date are skipped."""
    from reasoningrec.config import params_path, read_params
    from reasoningrec.grid import GridOptions, exit_code, preview, run_grid

    path = params_path(params)
    settings = read_params(path, overlay or (), set_ or ())
    options = GridOptions(
        datasets=tuple(_words(datasets)),
        methods=tuple(_words(methods)) if methods else None,
        k_shots=tuple(_integers(k, "--k")),
        seeds=tuple(_integers(seeds, "--seeds")),
        workers=workers,
        deadline_s=math.inf if deadline_s is None else deadline_s,
        hard_deadline_s=hard_deadline_s,
        skip_validation=skip_validation,
        report=report_out if report else None,
        report_bootstrap=report_bootstrap,
        command=invocation(),
    )
    if dry_run:
        for line in preview(settings, options):
            typer.echo(line)
        return
    if log_results:
        raise typer.Exit(_log_results(settings, options))
    synthesis = None
    if synthesis_batch_size is not None:
        synthesis = read_params(
            path, overlay or (), set_ or (), overrides={"llm": {"batch_size": synthesis_batch_size}}
        )
    status = run_grid(settings, options, synthesis_params=synthesis, say=typer.echo)
    typer.echo(json.dumps(status["summary"], indent=2))
    raise typer.Exit(exit_code(status))


def _log_results(settings, options) -> int:
    from reasoningrec.grid.saved import log_results

    outcome = log_results(settings, options, say=typer.echo)
    typer.echo(
        json.dumps(
            {
                "logged": len(outcome["logged"]),
                "logged before": len(outcome["already"]),
                "not finished": sorted(outcome["missing"]),
                "unregistered": len(outcome["unregistered"]),
                "failed": outcome["failed"],
                "report": outcome.get("report") or outcome.get("report_error"),
            },
            indent=2,
        )
    )
    return 1 if outcome["failed"] or "report_error" in outcome else 0


def _words(values: list[str] | None) -> list[str]:
    """``--x a,b --x c`` and ``--x "a b"`` -> [a, b, c]."""
    return [word for value in values or [] for word in value.replace(",", " ").split()]


def _integers(values: list[str] | None, option: str) -> list[int]:
    words = _words(values)
    try:
        return [int(word) for word in words]
    except ValueError:
        raise typer.BadParameter(f"expected integers, got {words}", param_hint=option) from None
