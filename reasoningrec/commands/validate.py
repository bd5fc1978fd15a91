"""CLI command: ``reasoningrec validate`` (Great Expectations suites on a dataset's files)."""

from __future__ import annotations

from typing import Annotated, Literal

import typer

from reasoningrec.app import (
    AllowStaleOption,
    DatasetOption,
    ForceOption,
    ParamsOption,
    SetOption,
    app,
    params_from,
)

STAGES = {"interactions": "validate_interactions", "samples": "validate_samples"}


@app.command()
def validate(
    dataset: DatasetOption,
    params: ParamsOption = None,
    stage: Annotated[
        Literal["interactions", "samples", "all"],
        typer.Option("--stage", help="interactions (after ingest), samples (after prepare), or all that exist."),
    ] = "all",
    set_: SetOption = None,
    force: ForceOption = False,
    allow_stale: AllowStaleOption = False,
) -> None:
    """Check a dataset's files against the suites in expectations/; exit 2 with a report on failure.

    A check that passes lets the stages below it run; one that fails stops them (in every runner)."""
    from reasoningrec.app import run_stage
    from reasoningrec.errors import ValidationFailed
    from reasoningrec.validation_report import format_summary
    from reasoningrec.validation_summary import ValidationSummary

    settings = params_from(params, set_)
    stages = list(STAGES) if stage == "all" else [stage]
    if stage == "all" and not (settings.work_dir(dataset) / "samples.parquet").is_file():
        stages = ["interactions"]
        typer.echo(f"validate {dataset}: no samples.parquet yet (run prepare), checking interactions only")
    failures = []
    for name in stages:
        try:
            outcome = run_stage(settings, dataset, STAGES[name], force=force, allow_stale=allow_stale)
            typer.echo(format_summary(outcome.summary_as(ValidationSummary)))
        except ValidationFailed as exc:
            failures.append(str(exc))
    if failures:
        raise ValidationFailed("\n\n".join(failures))
