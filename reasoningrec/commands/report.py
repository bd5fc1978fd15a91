"""CLI commands: baselines and the results report. Heavy imports stay inside the bodies."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from reasoningrec.app import (
    AllowStaleOption,
    DatasetOption,
    ForceOption,
    OverlayOption,
    ParamsOption,
    SetOption,
    app,
    invocation,
    params_from,
    run_stage,
    stage_command,
)


@app.command(context_settings={"allow_extra_args": True})
def baselines(
    ctx: typer.Context,
    dataset: DatasetOption,
    params: ParamsOption = None,
    seeds: Annotated[
        str | None,
        typer.Option(
            "--seeds", help="Seeds for SASRec/Caser: --seeds 0 1 2 or --seeds 0,1,2 (default: baselines.seeds)."
        ),
    ] = None,
    set_: SetOption = None,
    force: ForceOption = False,
    allow_stale: AllowStaleOption = False,
) -> None:
    """SASRec, Caser and the like-rate heuristics on the prepared samples; one MLflow run each."""
    chosen = parse_seeds(seeds, ctx.args)
    sets = [*(set_ or []), *([f"baselines.seeds={chosen}"] if chosen is not None else [])]
    outcome = run_stage(
        params_from(params, sets),
        dataset,
        "baselines",
        force=force,
        allow_stale=allow_stale,
        extra={"command": invocation()},
    )
    from reasoningrec.baselines import BaselinesSummary

    for method, entry in outcome.summary_as(BaselinesSummary).methods.items():
        runs = entry["seeds"].values()
        valid = ", ".join(f"{r['valid_auc']:.3f}" for r in runs if "valid_auc" in r)
        typer.echo(
            f"{dataset} {method}: test AUC {entry.get('test_auc_mean', float('nan')):.3f}"
            f" ± {entry.get('test_auc_std', 0.0):.3f} over {len(entry['seeds'])} seed(s) (valid AUC {valid})"
        )


def parse_seeds(first: str | None, extra: list[str]) -> list[int] | None:
    """``--seeds 0 1 2`` arrives as "0" plus extra args ["1", "2"]; ``--seeds 0,1,2`` as one string."""
    if first is None:
        if extra:
            raise typer.BadParameter(f"unexpected arguments {extra}")
        return None
    words = [w for part in [first, *extra] for w in part.replace(",", " ").split()]
    try:
        return [int(w) for w in words]
    except ValueError:
        raise typer.BadParameter(f"seeds must be integers, got {words}", param_hint="--seeds") from None


@app.command()
def report(
    params: ParamsOption = None,
    out: Annotated[Path, typer.Option("--out", help="Markdown report; the HTML page goes beside it.")] = Path(
        "docs/results.md"
    ),
    bootstrap: Annotated[
        int, typer.Option("--bootstrap", min=0, help="Bootstrap resamples per run for AUC intervals (0 = off).")
    ] = 1000,
    overlay: OverlayOption = None,
    set_: SetOption = None,
) -> None:
    """Collect the MLflow runs into docs/results.md + docs/results.html (tables, plots, provenance)."""
    from reasoningrec.report import run_report

    path = run_report(params_from(params, set_, overlay), out, n_bootstrap=bootstrap)
    typer.echo(f"report: {path} and {path.with_suffix('.html')}")


def _compare_lines(dataset: str, s) -> str:
    lines = []
    for name, cell in s.cells.items():
        auc = "n/a" if cell.test_auc is None else f"{cell.test_auc:.3f}"
        lines.append(f"{dataset} {name}: test AUC {auc} over {cell.seeds} seed(s)")
    return "\n".join(lines)


stage_command(
    "compare",
    "reasoningrec.report.compare:CompareSummary",
    _compare_lines,
    help="Test AUC against K for the runs of the dataset's plan (compare/auc_vs_k.png + compare.json).",
)
