"""The typer application object and options shared by every command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

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
LimitOption = Annotated[
    int | None, typer.Option("--limit", help="Process only the first N users/items (a quick try).")
]


def invocation() -> str:
    """The command line of this process as a user would retype it (``reasoningrec <args>``)."""
    import shlex
    import sys

    return shlex.join(["reasoningrec", *sys.argv[1:]])


def params_from(path: Path | None):
    """Load the run's settings (cached: loaded once per process)."""
    from reasoningrec.config import load_params

    return load_params(path)
