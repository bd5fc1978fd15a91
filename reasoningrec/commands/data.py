"""CLI commands: data stages (ingest, prepare, download). Heavy imports stay inside the bodies."""

from __future__ import annotations

from typing import Annotated

import typer

from reasoningrec.app import (
    AllowStaleOption,
    DatasetOption,
    ForceOption,
    ParamsOption,
    SetOption,
    app,
    params_from,
    run_stage,
    stage_command,
)

stage_command(
    "ingest",
    "reasoningrec.data.ingest:IngestSummary",
    lambda d, s: f"ingest {d}: {s.rows:,} ratings, {s.users:,} users, {s.items:,} items (time: {s.time_source})",
    help="Read a dataset's raw files into interactions.parquet + items.parquet (+ ingest.json).",
)


@app.command()
def prepare(
    dataset: DatasetOption,
    params: ParamsOption = None,
    max_users: Annotated[
        int | None,
        typer.Option(
            "--max-users", min=1, help="Keep only the first N users (by id): the same as --set prepare.max_users=N."
        ),
    ] = None,
    set_: SetOption = None,
    force: ForceOption = False,
    allow_stale: AllowStaleOption = False,
) -> None:
    """Duplicates, k-core, chronological train/valid/test samples and sampled reviews."""
    sets = [*(set_ or []), *([f"prepare.max_users={max_users}"] if max_users is not None else [])]
    from reasoningrec.data.prepare import PrepareSummary

    outcome = run_stage(params_from(params, sets), dataset, "prepare", force=force, allow_stale=allow_stale)
    s = outcome.summary_as(PrepareSummary)
    n = s.samples
    typer.echo(
        f"prepare {dataset}: {s.users:,} users, {s.items:,} items, {s.interactions:,} interactions, "
        f"samples train/valid/test {n['train']}/{n['valid']}/{n['test']}, "
        f"{s.positives_share:.1%} likes"
    )


@app.command()
def download(
    dataset: DatasetOption,
    params: ParamsOption = None,
    force: Annotated[bool, typer.Option("--force", help="Download again even if the files exist.")] = False,
) -> None:
    """Fetch a dataset's raw files from their public source into the raw data folder."""
    from reasoningrec.data.download import run_download

    s = run_download(params_from(params), dataset, force=force)
    typer.echo(f"download {dataset}: {s.status} -> {s.path}")
