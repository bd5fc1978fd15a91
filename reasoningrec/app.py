"""The typer application object and options shared by every command."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(
    name="reasoningrec",
    help="ReasoningRec: like/dislike predictions with explanations, from raw ratings to a registered model.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

ParamsOption = Annotated[
    Path | None,
    typer.Option("--params", help="Settings file (default: $REASONINGREC_PARAMS or ./params.yaml)."),
]
DatasetOption = Annotated[str, typer.Option("--dataset", "-d", help="Dataset name from params.yaml.")]
LimitOption = Annotated[int | None, typer.Option("--limit", help="Process only the first N users/items (a quick try).")]


def invocation() -> str:
    """The command line of this process as a user would retype it (``reasoningrec <args>``)."""
    import shlex
    import sys

    return shlex.join(["reasoningrec", *sys.argv[1:]])


SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override a setting for this run, e.g. --set train.epochs=3 (repeatable)."),
]
OverlayOption = Annotated[
    list[Path] | None,
    typer.Option("--overlay", help="A settings file merged over params.yaml, e.g. configs/paper.yaml (repeatable)."),
]
ForceOption = Annotated[bool, typer.Option("--force", help="Run even when the stage is up to date.")]
AllowStaleOption = Annotated[
    bool, typer.Option("--allow-stale", help="Run although an upstream stage is not up to date.")
]


def params_from(path: Path | None, sets: list[str] | None = None, overlays: list[Path] | None = None):
    """Load the run's settings with its overlays and ``--set`` assignments (cached per process)."""
    from reasoningrec.config import load_params

    return load_params(path, overlays or (), sets or ())


def run_stage(
    params,
    dataset: str,
    stage: str,
    *,
    force: bool = False,
    allow_stale: bool = False,
    subdir: str | None = None,
    extra: dict | None = None,
    **options,
):
    """Execute one stage call through the completion rule; say so when it was up to date."""
    from reasoningrec.completion import execute
    from reasoningrec.pipeline import call_for

    call = call_for(params, dataset, stage, subdir=subdir, **options)
    outcome = execute(params, call, force=force, allow_stale=allow_stale, runner="cli", extra=extra)
    if not outcome.ran:
        typer.echo(f"{call.name} {dataset}: up to date, not run again (--force runs it)", err=True)
    return outcome


def stage_command(
    stage: str, summary: str, say: Callable[[str, Any], str], *, help: str, name: str | None = None
) -> None:
    """Register ``reasoningrec <name>`` for a stage that takes only the common options: it runs the
    stage's call through the completion rule and prints ``say(dataset, summary)``. ``summary`` is the
    stage's summary class as ``module:Class``, imported when the command runs (heavy imports stay
    out of the CLI's start)."""

    def command(
        dataset: DatasetOption,
        params: ParamsOption = None,
        set_: SetOption = None,
        force: ForceOption = False,
        allow_stale: AllowStaleOption = False,
    ) -> None:
        import importlib

        outcome = run_stage(params_from(params, set_), dataset, stage, force=force, allow_stale=allow_stale)
        module, _, cls = summary.partition(":")
        if line := say(dataset, outcome.summary_as(getattr(importlib.import_module(module), cls))):
            typer.echo(line)

    command.__doc__ = help
    app.command(name or stage.replace("_", "-"))(command)
