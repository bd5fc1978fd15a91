"""CLI commands: baselines and the results report. Heavy imports stay inside the bodies."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from reasoningrec.app import DatasetOption, ParamsOption, app, invocation, params_from


@app.command(context_settings={"allow_extra_args": True})
def baselines(
    ctx: typer.Context,
    dataset: DatasetOption,
    params: ParamsOption = None,
    seeds: Annotated[
        str | None,
        typer.Option("--seeds", help="Seeds for SASRec/Caser: --seeds 0 1 2 or --seeds 0,1,2 (default: baselines.seeds)."),
    ] = None,
) -> None:
    """SASRec, Caser and the like-rate heuristics on the prepared samples; one MLflow run each."""
    from reasoningrec.baselines import run_baselines

    summary = run_baselines(params_from(params), dataset, seeds=parse_seeds(seeds, ctx.args), command=invocation())
    for method, entry in summary.methods.items():
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
) -> None:
    """Collect the MLflow runs into docs/results.md + docs/results.html (tables, plots, provenance)."""
    from reasoningrec.report import run_report

    path = run_report(params_from(params), out, n_bootstrap=bootstrap)
    typer.echo(f"report: {path} and {path.with_suffix('.html')}")
