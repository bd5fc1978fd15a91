"""CLI commands: experiments, the model registry (register / promote / versions), explain, MLflow UI."""

from __future__ import annotations

import contextlib
import json
from typing import Annotated

import typer

from reasoningrec.app import (
    AllowStaleOption,
    DatasetOption,
    ForceOption,
    ParamsOption,
    SetOption,
    app,
    invocation,
    params_from,
    run_stage,
)
from reasoningrec.methods import help_text

MethodOption = Annotated[str, typer.Option("--method", "-m", help=f"An LLM method: {help_text(llm=True)}.")]
KOption = Annotated[int, typer.Option("--k", help="K-shot training set size (ignored by zero-shot methods).")]
SeedOption = Annotated[int, typer.Option("--seed", help="Training seed.")]


@app.command()
def experiment(
    dataset: DatasetOption,
    method: MethodOption = "reasoningrec",
    k: KOption = 64,
    seed: SeedOption = 0,
    params: ParamsOption = None,
    set_: SetOption = None,
    force: ForceOption = False,
    allow_stale: AllowStaleOption = False,
) -> None:
    """Train (or zero-shot) -> score -> metrics -> one MLflow run -> registry (champion rule). Under
    accelerate launch / torchrun, rank 0 runs it and every rank trains."""
    from reasoningrec.experiment import run_launched

    settings = params_from(params, set_)
    outcome = run_launched(
        settings,
        lambda: run_stage(
            settings,
            dataset,
            "experiment",
            force=force,
            allow_stale=allow_stale,
            extra={"command": invocation()},
            method=method,
            k_shots=k,
            seed=seed,
        ),
    )
    if outcome is not None:  # None: a rank of a launch other than 0, which only trained
        typer.echo(json.dumps(outcome.summary, indent=2, default=str))


@app.command()
def register(
    dataset: DatasetOption,
    method: MethodOption = "reasoningrec",
    k: KOption = 64,
    seed: SeedOption = 0,
    run_id: Annotated[str | None, typer.Option("--run-id", help="Register this run instead.")] = None,
    params: ParamsOption = None,
) -> None:
    """Register the model of a logged run as a new version (champion only if its valid_auc is better)."""
    from reasoningrec import tracking

    settings = params_from(params)
    if run_id is None:
        client = tracking.get_client(settings)
        runs = tracking.find_runs(client, settings, **tracking.contract_tags(dataset, method, k, seed))
        if not runs:
            raise tracking.RegistryError(
                f"no MLflow run for {tracking.run_name(dataset, method, k, seed)}; run `experiment` first"
            )
        run_id = runs[0].info.run_id
    registration = tracking.register_run_model(settings, dataset, run_id)
    typer.echo(json.dumps(registration.to_dict(), indent=2))


@app.command()
def promote(
    dataset: DatasetOption,
    version: Annotated[int, typer.Option("--version", help="Registered model version to make champion.")],
    params: ParamsOption = None,
) -> None:
    """Move the `champion` alias to a version by hand (as moving it in the MLflow UI does)."""
    from reasoningrec import tracking

    settings = params_from(params)
    previous = tracking.promote(settings, dataset, version)
    name = tracking.registered_model_name(settings, dataset)
    typer.echo(f"{name}: champion is now version {version} (was {previous if previous is not None else 'none'})")


@app.command()
def versions(dataset: DatasetOption, params: ParamsOption = None) -> None:
    """List the registered versions of a dataset's model with their aliases and valid_auc."""
    from reasoningrec import tracking

    settings = params_from(params)
    rows = tracking.list_versions(settings, dataset)
    if not rows:
        typer.echo(f"{tracking.registered_model_name(settings, dataset)}: no versions yet")
        return
    for row in rows:
        auc = "n/a" if row["valid_auc"] is None else f"{row['valid_auc']:.4f}"
        aliases = ",".join(row["aliases"]) or "-"
        typer.echo(
            f"v{row['version']:<4} {aliases:<12} valid_auc={auc}  {row['method']} K={row['k_shots']} seed={row['seed']}"
        )


@app.command()
def explain(
    dataset: DatasetOption,
    user: Annotated[str, typer.Option("--user", help="User id (as in samples.parquet).")],
    item: Annotated[str, typer.Option("--item", help="Target item id (as in items.parquet).")],
    max_new_tokens: Annotated[int | None, typer.Option(help="Explanation length cap.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")] = False,
    params: ParamsOption = None,
) -> None:
    """Ask the champion model whether USER will like ITEM: P(Yes), the label, the explanation, its evidence.

    The evidence is what the explanation cites (the user's history items, features) and what it
    invents (items its prompt never showed), checked against the prompt it was written for.
    """
    import os

    import pandas as pd

    from reasoningrec import serving_requests, tracking
    from reasoningrec.errors import DataError
    from reasoningrec.explanations.served import served_evidence

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # keep the answer readable
    settings = params_from(params)
    request = serving_requests.load_request(settings, dataset, user, item)
    model = tracking.load_model(settings, dataset)
    run_params = {"explain": True}
    if max_new_tokens:
        run_params["max_new_tokens"] = max_new_tokens
    row = model.predict(pd.DataFrame([request]), params=run_params).iloc[0]
    info = model.metadata.metadata or {}
    explanation = str(row["explanation"] or "")
    try:
        evidence = served_evidence(
            settings, dataset, user, item, explanation, variant=model.unwrap_python_model().variant
        ).to_dict()
    except DataError as missing:  # e.g. no feature vocabulary yet: the answer still stands
        evidence = {"unavailable": str(missing)}
    answer = {
        "model": {"name": info.get("registered_model"), "version": info.get("version"), "alias": info.get("alias")},
        "user_id": user,
        "item_id": item,
        "item_title": request["target"]["title"],
        "p_yes": float(row["p_yes"]),
        "label": int(row["prediction"]),
        "explanation": explanation,
        "evidence": evidence,
    }
    if as_json:
        typer.echo(json.dumps(answer, indent=2))
        return
    typer.echo(f"model:       {info.get('registered_model')} v{info.get('version')} (@{info.get('alias')})")
    typer.echo(f"user / item: {user} / {item} ({request['target']['title']})")
    typer.echo(f"prediction:  {'Yes (will like)' if answer['label'] == 1 else 'No (will not like)'}")
    typer.echo(f"P(Yes):      {answer['p_yes']:.4f}")
    typer.echo(f"explanation: {explanation or '(the model wrote no reasoning)'}")
    for line in evidence_lines(evidence):
        typer.echo(line)


def evidence_lines(evidence: dict) -> list[str]:
    """The evidence section of ``explain`` as text lines (pure)."""
    if "unavailable" in evidence:
        return [f"evidence:    unavailable ({evidence['unavailable']})"]
    history = evidence["history"]
    lines = [f"evidence:    checked against its prompt ({len(history)} history items, the target)"]
    cited = [f"{h['title']} ({'liked' if h['liked'] else 'disliked'})" for h in history if h["cited"]]
    lines.append(f"  cites history:  {'; '.join(cited) if cited else 'none'}")
    lines.append(f"  cites target:   {'yes' if evidence['cited_target'] else 'no'}")
    ungrounded = set(evidence["ungrounded_features"])
    features = [f"{term}{' (not in the prompt)' if term in ungrounded else ''}" for term in evidence["features"]]
    lines.append(f"  features:       {', '.join(features) if features else 'none'}")
    invented = evidence["invented_items"]
    lines.append(f"  invented items: {'; '.join(invented) + ' (not in the prompt)' if invented else 'none'}")
    grounding = evidence["grounding"]
    lines.append(
        "  grounding:      "
        + (
            "n/a (names no item or feature)"
            if grounding is None
            else f"{grounding:.2f} of its item references and features are in the prompt"
        )
    )
    return lines


@app.command()
def ui(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 5000,
    params: ParamsOption = None,
) -> None:
    """Open the MLflow UI on http://127.0.0.1:PORT for this project's tracking store (Ctrl-C stops it)."""
    import subprocess

    from reasoningrec import tracking

    command = tracking.ui_command(params_from(params), port=port)
    typer.echo(f"MLflow UI on http://127.0.0.1:{port}  ({' '.join(command)})")
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how the UI is meant to stop
        subprocess.run(command, check=False)
