"""The ``reasoningrec`` command line: one typer app, one command per pipeline stage.

Commands live in ``reasoningrec/commands/<area>.py`` and import their stage lazily inside the
command body, so ``reasoningrec --help`` never pays for torch, transformers or MLflow.
"""

from __future__ import annotations

import sys

from reasoningrec.app import app
from reasoningrec.commands import (  # noqa: F401  (registers)
    data,
    grid,
    model,
    ops,
    registry,
    report,
    run,
    synthesis,
    validate,
)
from reasoningrec.errors import ReasoningRecError
from reasoningrec.logs import setup_logging
from reasoningrec.process_env import prefer_huge_pages


def main() -> None:
    """Entry point: run the app, turning user-facing errors into one clear line and exit code 2."""
    prefer_huge_pages()  # before any command imports torch
    setup_logging()
    try:
        code = app(standalone_mode=False)  # a command's typer.Exit(n) comes back as n in this mode
    except ReasoningRecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except SystemExit:
        raise
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, click.exceptions.Abort):
            sys.exit(130)
        raise
    if isinstance(code, int) and code:
        sys.exit(code)


if __name__ == "__main__":
    main()
