"""CLI command: ``reasoningrec validate`` (Great Expectations suites on a dataset's files)."""

from __future__ import annotations

from typing import Annotated, Literal

import typer

from reasoningrec.app import DatasetOption, ParamsOption, app, params_from


@app.command()
def validate(
    dataset: DatasetOption,
    params: ParamsOption = None,
    stage: Annotated[
        Literal["interactions", "samples", "all"],
        typer.Option("--stage", help="interactions (after ingest), samples (after prepare), or all that exist."),
    ] = "all",
) -> None:
    """Check a dataset's files against the suites in expectations/; exit 2 with a report on failure."""
    from reasoningrec.errors import ValidationFailed
    from reasoningrec.validation import STAGES, run_validation
    from reasoningrec.validation_report import format_summary

    settings = params_from(params)
    stages = list(STAGES) if stage == "all" else [stage]
    if stage == "all" and not (settings.work_dir(dataset) / "samples.parquet").is_file():
        stages = ["interactions"]
        typer.echo(f"validate {dataset}: no samples.parquet yet (run prepare), checking interactions only")
    failures = []
    for name in stages:
        try:
            typer.echo(format_summary(run_validation(settings, dataset, name)))
        except ValidationFailed as exc:
            failures.append(str(exc))
    if failures:
        raise ValidationFailed("\n\n".join(failures))
