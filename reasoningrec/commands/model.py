"""CLI commands: model stages (records, train, score). Heavy imports stay inside the bodies."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from reasoningrec.app import DatasetOption, ParamsOption, app, params_from

MethodOption = Annotated[
    str,
    typer.Option("--method", "-m", help="reasoningrec | reasoningrec-no-profile | reasoningrec-no-description | tallrec"),
]
KOption = Annotated[int, typer.Option("--k", "-k", help="K-shot training set size (one of records.k_shots).")]
SeedOption = Annotated[int, typer.Option("--seed", help="Training seed.")]


@app.command()
def records(dataset: DatasetOption, params: ParamsOption = None) -> None:
    """Build prompt/completion records (K-shot train, validation, test) -> records.parquet + records.json."""
    from reasoningrec.records import run_records

    s = run_records(params_from(params), dataset)
    splits = ", ".join(f"{k} {v['records']} ({v['likes']} likes)" for k, v in s["splits"].items())
    shortened = sum(s["shortened"].values())
    typer.echo(
        f"records {dataset}: variants {', '.join(s['variants'])}; {splits}; "
        f"{shortened} prompts shortened, {sum(s['overlong'].values())} over max_length; max {s['max_tokens']} tokens"
    )


@app.command()
def train(
    dataset: DatasetOption,
    method: MethodOption = "reasoningrec",
    k: KOption = 64,
    seed: SeedOption = 42,
    params: ParamsOption = None,
    out: Annotated[Path | None, typer.Option("--out", help="Output folder (default under paths.models_dir).")] = None,
) -> None:
    """Fine-tune a LoRA adapter on the K-shot records; keeps the best epoch by validation AUC."""
    from reasoningrec.training import run_train

    s = run_train(params_from(params), dataset, method, k, seed, out)
    typer.echo(
        f"train {dataset} {method} K={k} seed={seed}: best epoch {s['best_epoch']} of {s['epochs_run']}, "
        f"valid AUC {s['best_valid_auc']:.4f}, {s['precision']}, {s['seconds']:.0f} s -> {s['adapter_dir']}"
    )


@app.command()
def score(
    adapter: Annotated[Path, typer.Option("--adapter", help="Adapter folder written by `train` (…/adapter).")],
    dataset: DatasetOption,
    params: ParamsOption = None,
    split: Annotated[str, typer.Option("--split", help="Records split to score: test or valid.")] = "test",
    explain: Annotated[
        int | None, typer.Option("--explain", help="Explanations to generate (default evaluate.explain_limit).")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="predictions.parquet path (default: beside the adapter).")] = None,
) -> None:
    """Score records with P(Yes), generate explanations, write predictions.parquet and print the metrics."""
    from reasoningrec import metrics
    from reasoningrec.io import write_json, write_parquet
    from reasoningrec.records import read_records
    from reasoningrec.scoring import load_adapter, predict_records

    p = params_from(params)
    model, tokenizer, meta = load_adapter(adapter)
    recs = read_records(p.work_dir(dataset) / "records.parquet", meta.get("variant", "full"))
    recs = recs[recs["split"] == split].reset_index(drop=True)
    limit = p.evaluate.explain_limit if explain is None else explain
    preds = predict_records(model, tokenizer, recs, explain_limit=limit,
                            max_new_tokens=p.evaluate.explain_max_new_tokens)
    out = out or Path(adapter).parent / f"predictions_{split}.parquet"
    write_parquet(out, preds)
    result = metrics.classification_metrics(preds["label"], preds["p_yes"])
    explained = preds[preds["explanation"].notna()]
    if len(explained):
        result["parse_failure_rate"] = metrics.parse_failure_rate(explained["parsed_label"].tolist())
    write_json(Path(out).with_suffix(".json"), result)
    typer.echo(f"score {dataset} {split}: " + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                                      for k, v in result.items()) + f" -> {out}")
