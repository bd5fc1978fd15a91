"""CLI commands: model stages (records, train, score). Heavy imports stay inside the bodies."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from reasoningrec.app import (
    DatasetOption,
    ParamsOption,
    SetOption,
    app,
    params_from,
    stage_command,
)
from reasoningrec.methods import names

MethodOption = Annotated[
    str,
    typer.Option("--method", "-m", help=f"A fine-tuned method: {', '.join(names(fine_tuned=True))}."),
]
KOption = Annotated[int, typer.Option("--k", "-k", help="K-shot training set size (one of records.k_shots).")]
SeedOption = Annotated[int, typer.Option("--seed", help="Training seed.")]


def _records_line(dataset: str, s) -> str:
    splits = ", ".join(f"{k} {v['records']} ({v['likes']} likes)" for k, v in s.splits.items())
    return (
        f"records {dataset}: variants {', '.join(s.variants)}; {splits}; "
        f"{sum(s.shortened.values())} prompts shortened, {sum(s.overlong.values())} over max_length; "
        f"max {s.max_tokens} tokens"
    )


stage_command(
    "records",
    "reasoningrec.records.stage:RecordsSummary",
    _records_line,
    help="Build prompt/completion records (K-shot train, validation, test) -> records.parquet + records.json.",
)


@app.command()
def train(
    dataset: DatasetOption,
    method: MethodOption = "reasoningrec",
    k: KOption = 64,
    seed: SeedOption = 42,
    params: ParamsOption = None,
    set_: SetOption = None,
    processes: Annotated[
        str | None,
        typer.Option(
            "--processes",
            help="Data-parallel processes (one per GPU; 'auto' = every visible GPU): sets "
            "train.processes. Under torchrun / accelerate launch each process trains its share.",
        ),
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Output folder (default under paths.models_dir).")] = None,
) -> None:
    """Fine-tune a LoRA adapter on the K-shot records; keeps the best epoch by validation AUC."""
    from reasoningrec.training.distributed import current_comm, finish
    from reasoningrec.training.train import run_train

    sets = [*(set_ or []), *([f"train.processes={processes}"] if processes is not None else [])]
    s = run_train(params_from(params, sets), dataset, method, k, seed, out)
    comm = current_comm()
    if comm.rank == 0:
        auc = "n/a" if s.best_valid_auc is None else f"{s.best_valid_auc:.4f}"
        typer.echo(
            f"train {dataset} {method} K={k} seed={seed}: best epoch {s.best_epoch} of {s.epochs_run}, "
            f"valid AUC {auc}, {s.precision}, {s.processes} process(es), {s.seconds:.0f} s -> {s.adapter_dir}"
        )
    finish(comm)


@app.command()
def score(
    adapter: Annotated[Path, typer.Option("--adapter", help="Adapter folder written by `train` (…/adapter).")],
    dataset: DatasetOption,
    params: ParamsOption = None,
    split: Annotated[str, typer.Option("--split", help="Records split to score: test or valid.")] = "test",
    explain: Annotated[
        int | None, typer.Option("--explain", help="Explanations to generate (default evaluate.explain_limit).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="predictions.parquet path (default: beside the adapter).")
    ] = None,
) -> None:
    """Score records with P(Yes), generate explanations, write predictions.parquet and print the metrics."""
    from reasoningrec import metrics
    from reasoningrec.chat import render_chat
    from reasoningrec.evaluation import consistency_metrics
    from reasoningrec.io import write_json, write_parquet
    from reasoningrec.models import load_adapter
    from reasoningrec.predictions import predictions_frame
    from reasoningrec.records.stage import read_records
    from reasoningrec.scoring import explain as explain_prompts
    from reasoningrec.scoring import score_prompts, scored_labels

    p = params_from(params)
    model, tokenizer, meta = load_adapter(adapter)
    recs = read_records(p.work_dir(dataset) / "records.parquet", meta.get("variant", "full"))
    recs = recs[recs["split"] == split].reset_index(drop=True)
    prompts = [render_chat(tokenizer, text) for text in recs["prompt_text"]]
    p_yes = score_prompts(model, tokenizer, prompts, p.llm.batch_size, progress=f"score {split}")
    limit = p.evaluate.explain_limit if explain is None else explain
    n_explain = len(prompts) if limit is None else min(limit, len(prompts))
    generated = explain_prompts(
        model,
        tokenizer,
        prompts[:n_explain],
        p_yes[:n_explain],
        mode=p.evaluate.explanations,
        max_new_tokens=p.evaluate.explain_max_new_tokens,
        batch_size=p.llm.batch_size,
        progress="explain",
    )
    preds = predictions_frame(recs, p_yes, dict(enumerate(generated)))
    out = out or Path(adapter).parent / f"predictions_{split}.parquet"
    write_parquet(out, preds)
    result = metrics.classification_metrics(preds["label"], preds["p_yes"])
    if generated:
        result.update(consistency_metrics(generated, scored_labels(p_yes[:n_explain])))
    write_json(Path(out).with_suffix(".json"), result)
    typer.echo(
        f"score {dataset} {split}: "
        + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in result.items())
        + f" -> {out}"
    )
