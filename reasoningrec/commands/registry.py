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
    outcome = run_launched(settings, lambda: run_stage(
        settings, dataset, "experiment", force=force, allow_stale=allow_stale, extra={"command": invocation()},
        method=method, k_shots=k, seed=seed))
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
            raise tracking.RegistryError(f"no MLflow run for {tracking.run_name(dataset, method, k, seed)}; run `experiment` first")
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
        typer.echo(f"v{row['version']:<4} {aliases:<12} valid_auc={auc}  {row['method']} K={row['k_shots']} seed={row['seed']}")


@app.command()
def explain(
    dataset: DatasetOption,
    user: Annotated[str, typer.Option("--user", help="User id (as in samples.parquet).")],
    item: Annotated[str, typer.Option("--item", help="Target item id (as in items.parquet).")],
    max_new_tokens: Annotated[int | None, typer.Option(help="Explanation length cap.")] = None,
    params: ParamsOption = None,
) -> None:
    """Ask the champion model whether USER will like ITEM, with its explanation."""
    import os

    import pandas as pd

    from reasoningrec import serving, tracking

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # keep the answer readable
    settings = params_from(params)
    request = serving.load_request(settings, dataset, user, item)
    model = tracking.load_model(settings, dataset)
    run_params = {"explain": True}
    if max_new_tokens:
        run_params["max_new_tokens"] = max_new_tokens
    row = model.predict(pd.DataFrame([request]), params=run_params).iloc[0]
    info = model.metadata.metadata or {}
    typer.echo(f"model:       {info.get('registered_model')} v{info.get('version')} (@{info.get('alias')})")
    typer.echo(f"user / item: {user} / {item} ({request['target']['title']})")
    typer.echo(f"prediction:  {'Yes (will like)' if row['prediction'] == 1 else 'No (will not like)'}")
    typer.echo(f"P(Yes):      {row['p_yes']:.4f}")
    typer.echo(f"explanation: {row['explanation'] or '(the model wrote no reasoning)'}")


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
