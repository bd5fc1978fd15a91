"""CLI commands: synthesis stages (describe, profile, reason) and import-texts.

Heavy modules (pandas, the LLM backends) are imported inside the command bodies.
"""

from __future__ import annotations

from typing import Annotated

import typer

from reasoningrec.app import (
    AllowStaleOption,
    DatasetOption,
    ForceOption,
    LimitOption,
    ParamsOption,
    SetOption,
    app,
    params_from,
    run_stage,
    stage_command,
)


def _report(stage: str, dataset: str, s: dict) -> None:
    # The record's JSON, not a SynthesisSummary: a sharded run records the shards' merged summary.
    rate = f", {s['tokens_per_s']} tok/s" if s.get("tokens_per_s") else ""
    problems = ", ".join(f"{k} {v}" for k, v in s["problems"].items() if v) or "none"
    typer.echo(
        f"{stage} {dataset}: {s['count']:,} texts, {s['invalid']:,} invalid ({problems}); "
        f"{s['backend_generations']:,} generated, {s['cache_hits']:,} from cache{rate} [{s['backend']}: {s['model']}]"
    )


IntoOption = Annotated[
    str | None,
    typer.Option("--into", help="Write into this sub-folder of the work dir (inputs still read from the work dir)."),
]


def _synthesize(stage: str, dataset: str, params, limit, set_, force, allow_stale, into=None) -> None:
    sets = [*(set_ or []), *([f"{stage}.limit={limit}"] if limit is not None else [])]
    outcome = run_stage(params_from(params, sets), dataset, stage, force=force, allow_stale=allow_stale, subdir=into)
    _report(stage, dataset, outcome.summary)


@app.command()
def describe(
    dataset: DatasetOption,
    params: ParamsOption = None,
    limit: LimitOption = None,
    into: IntoOption = None,
    set_: SetOption = None,
    force: ForceOption = False,
    allow_stale: AllowStaleOption = False,
) -> None:
    """Write a short LLM description of every item (descriptions.parquet + describe.json)."""
    _synthesize("describe", dataset, params, limit, set_, force, allow_stale, into)


@app.command()
def profile(
    dataset: DatasetOption,
    params: ParamsOption = None,
    limit: LimitOption = None,
    set_: SetOption = None,
    force: ForceOption = False,
    allow_stale: AllowStaleOption = False,
) -> None:
    """Write each user's LLM profile of likes and dislikes (profiles.parquet + profile.json)."""
    _synthesize("profile", dataset, params, limit, set_, force, allow_stale)


@app.command()
def reason(
    dataset: DatasetOption,
    params: ParamsOption = None,
    limit: LimitOption = None,
    set_: SetOption = None,
    force: ForceOption = False,
    allow_stale: AllowStaleOption = False,
) -> None:
    """Write label-conditioned reasoning for every sample (reasoning.parquet + reason.json)."""
    _synthesize("reason", dataset, params, limit, set_, force, allow_stale)


def _import_line(dataset: str, s) -> str:
    parts = []
    if s.descriptions is not None:
        parts.append(f"{s.descriptions['count']:,} descriptions")
    if s.profiles is not None:
        parts.append(f"{s.profiles['imported']:,} profiles")
    for split, r in (s.reasoning or {}).items():
        parts.append(f"{split} {r['matched']}/{r['records']} records matched ({r['invalid']} flagged)")
    return f"import-texts {dataset}: " + ", ".join(parts or ["nothing to import"])


stage_command(
    "import_texts",
    "reasoningrec.importer.stage:ImportSummary",
    _import_line,
    help="Import the paper authors' descriptions, profiles and reasoning instead of generating them.",
)
stage_command(
    "vocabulary",
    "reasoningrec.explanations.features:VocabularySummary",
    lambda d, s: f"vocabulary {d}: {s.features:,} features from {s.items:,} items (digest {s.digest[:12]})",
    help="Extract the feature vocabulary of the item texts (feature_vocabulary.json, for explanation metrics).",
)
