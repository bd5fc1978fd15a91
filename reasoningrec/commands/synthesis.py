"""CLI commands: synthesis stages (describe, profile, reason) and import-texts.

Heavy modules (pandas, the LLM backends) are imported inside the command bodies.
"""

from __future__ import annotations

import typer

from reasoningrec.app import DatasetOption, LimitOption, ParamsOption, app, params_from


def _report(stage: str, dataset: str, s: dict) -> None:
    rate = f", {s['tokens_per_s']} tok/s" if s.get("tokens_per_s") else ""
    problems = ", ".join(f"{k} {v}" for k, v in s["problems"].items() if v) or "none"
    typer.echo(
        f"{stage} {dataset}: {s['count']:,} texts, {s['invalid']:,} invalid ({problems}); "
        f"{s['backend_generations']:,} generated, {s['cache_hits']:,} from cache{rate} [{s['backend']}: {s['model']}]"
    )


@app.command()
def describe(dataset: DatasetOption, params: ParamsOption = None, limit: LimitOption = None) -> None:
    """Write a short LLM description of every item (descriptions.parquet + describe.json)."""
    from reasoningrec.synthesis import run_describe

    _report("describe", dataset, run_describe(params_from(params), dataset, limit=limit))


@app.command()
def profile(dataset: DatasetOption, params: ParamsOption = None, limit: LimitOption = None) -> None:
    """Write each user's LLM profile of likes and dislikes (profiles.parquet + profile.json)."""
    from reasoningrec.synthesis import run_profile

    _report("profile", dataset, run_profile(params_from(params), dataset, limit=limit))


@app.command()
def reason(dataset: DatasetOption, params: ParamsOption = None, limit: LimitOption = None) -> None:
    """Write label-conditioned reasoning for every sample (reasoning.parquet + reason.json)."""
    from reasoningrec.synthesis import run_reason

    _report("reason", dataset, run_reason(params_from(params), dataset, limit=limit))


@app.command("import-texts")
def import_texts(dataset: DatasetOption, params: ParamsOption = None) -> None:
    """Import the paper authors' descriptions, profiles and reasoning instead of generating them."""
    from reasoningrec.importer import run_import

    s = run_import(params_from(params), dataset)
    parts = []
    if "descriptions" in s:
        parts.append(f"{s['descriptions']['count']:,} descriptions")
    if "profiles" in s:
        parts.append(f"{s['profiles']['imported']:,} profiles")
    for split, r in s.get("reasoning", {}).items():
        parts.append(f"{split} {r['matched']}/{r['records']} records matched ({r['invalid']} flagged)")
    typer.echo(f"import-texts {dataset}: " + ", ".join(parts or ["nothing to import"]))
