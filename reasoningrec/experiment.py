"""One experiment = one (dataset, method, K, seed): train -> score -> explain -> evaluate -> persist -> track.

Fine-tuned methods train a LoRA adapter (:func:`reasoningrec.training.train.run_train`); zero-shot methods
score the base model with no training (K is 0, nothing is registered). Outputs go to
``<work_dir>/<dataset>/runs/<method>-k<K>-s<seed>/``::

    adapter/              the trained adapter (fine-tuned methods; written by training)
    train.json            training summary (fine-tuned methods)
    predictions.parquet   the predictions schema (reasoningrec.predictions)
    plots/                ROC and calibration curves of the test split (CSV/JSON for DVC, PNG)
    metrics.json          the ExperimentSummary: metrics, the MLflow run id, the registration
    fingerprint.json      what the run was made with (:func:`run_fingerprint`); a later call with
                          other settings or records moves the folder to ``runs/.superseded/``

Metrics: the MLflow run contract of docs/architecture.md (:mod:`reasoningrec.evaluation`).
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from reasoningrec import fingerprint
from reasoningrec.errors import ConfigError
from reasoningrec.experiment_summary import ExperimentSummary
from reasoningrec.methods import Method, llm_method

if TYPE_CHECKING:
    from reasoningrec.config import Params
    from reasoningrec.scoring import Explanation

log = logging.getLogger(__name__)


def run_dir(params: Params, dataset: str, method: str, k_shots: int, seed: int) -> Path:
    """``<work_dir>/<dataset>/runs/<method>-k<K>-s<seed>``."""
    return params.work_dir(dataset) / "runs" / f"{method}-k{k_shots}-s{seed}"


def run_experiment(
    params: Params, dataset: str, method: str, k_shots: int, seed: int, *, command: str | None = None
) -> ExperimentSummary:
    """Train (or not, for zero-shot) -> score valid/test -> explain -> metrics -> MLflow run -> registry.

    ``command``: what reproduces the run (the CLI line, the grid), kept as its ``command`` tag; the
    report shows it in the provenance table. Returns the summary also written to ``metrics.json``.
    """
    from reasoningrec.records.stage import read_records

    started = time.perf_counter()
    params.dataset(dataset)  # unknown dataset -> a clear error before any work
    _one_process()
    spec = llm_method(method)
    if not spec.fine_tuned:
        _release_followers()
    if not spec.fine_tuned and k_shots != 0:
        log.info("%s is zero-shot: K=%s ignored, logged as K=0", method, k_shots)
        k_shots = 0
    out = run_dir(params, dataset, method, k_shots, seed)
    records = read_records(params.work_dir(dataset) / "records.parquet", spec.variant)
    # A run folder made with other settings or records is moved aside, never resumed or overwritten.
    run_print, printed = run_fingerprint(params, dataset, method, k_shots, records)
    fingerprint.claim(out, run_print, printed)
    valid = records[records["split"] == "valid"].reset_index(drop=True)
    test = records[records["split"] == "test"].reset_index(drop=True)
    if test.empty:
        raise ConfigError(
            f"{params.work_dir(dataset) / 'records.parquet'}: no test records of variant {spec.variant!r}"
        )

    model, tokenizer, trained = _model(params, dataset, spec, k_shots, seed, out)
    valid_scores = _valid_scores(params, model, tokenizer, valid, trained)
    test_scores = _score(params, model, tokenizer, test, "score test")
    explanations = _explain(params, model, tokenizer, test, test_scores) if spec.explains else {}
    results, extra_settings = _evaluate(params, valid, valid_scores, test, test_scores, explanations, seed)
    evidence = None
    if explanations:
        from reasoningrec.evaluation import explanation_quality

        quality, evidence = explanation_quality(params, dataset, spec.variant, test, explanations)
        results.update(quality)
    predictions = _persist(out, valid, valid_scores, test, test_scores, explanations, evidence, trained)
    summary = _summarise(
        params,
        dataset,
        spec,
        k_shots,
        seed,
        out,
        run_print,
        results,
        extra_settings,
        trained,
        len(valid),
        len(test),
        command,
    )
    if _tracking_on(params):
        from reasoningrec.run_logging import log_and_register

        summary = log_and_register(params, summary, predictions)
    summary = summary.model_copy(update={"seconds": round(time.perf_counter() - started, 1)})
    summary.write(out / "metrics.json")
    log.info(
        "%s %s K=%s seed=%s: test AUC %.4f (run %s)",
        dataset,
        method,
        k_shots,
        seed,
        results.get("test_auc", math.nan),
        summary.run_id or "not logged: tracking off",
    )
    return summary


# --------------------------------------------------------------------------- the chain's links


def _one_process() -> None:
    """An experiment runs in one process, or as rank 0 of a launch through :func:`run_launched`
    (whose other ranks only train); never as every rank of a launch, which would log N runs."""
    from reasoningrec.training.distributed import leading, world_from_env

    world = world_from_env()
    if world.size > 1 and leading() is None:
        raise ConfigError(
            f"the experiment runs in one process, not as process {world.rank} of {world.size} of a launcher; "
            "train on several GPUs with --set train.processes=N (or auto): the training launches itself "
            "(the experiment command under accelerate launch / torchrun does this itself)"
        )


def _release_followers() -> None:
    """No training in this run: the other ranks of a launch need not wait for rank 0."""
    from reasoningrec.training.distributed import order_followers

    order_followers(("none",))


def run_launched(params: Params, lead):
    """The ``experiment`` command as one rank of ``accelerate launch`` / ``torchrun`` (``WORLD_SIZE``
    > 1): rank 0 runs ``lead()`` (the experiment: files, MLflow run and registration once) and trains
    with every rank; the other ranks only train with it, then return None. Without a launcher:
    ``lead()``."""
    import torch

    from reasoningrec.training import distributed

    world = distributed.world_from_env()
    if world.size == 1:
        return lead()
    comm = distributed.join_process_group(world, torch.cuda.is_available())

    def follow(order: tuple) -> None:
        if order[0] == "train":
            from reasoningrec.training.train import run_train

            _, dataset, method, k_shots, seed, out_dir = order
            run_train(params, dataset, method, k_shots, seed, out_dir=Path(out_dir))

    try:
        return distributed.run_launched(comm, lead, follow)
    finally:
        distributed.finish(comm)


def _model(params: Params, dataset: str, spec: Method, k_shots: int, seed: int, out: Path):
    """(model, tokenizer, training result or None): a freshly trained adapter, or the base model."""
    from reasoningrec import models

    if not spec.fine_tuned:
        model = models.load_causal_lm(params.train.base_model)
        return model, models.load_tokenizer(params.train.base_model), None
    from reasoningrec.training.train import run_train

    trained = run_train(params, dataset, spec.name, k_shots, seed, out_dir=out)
    model, tokenizer, _ = models.load_adapter(trained.adapter_dir)
    return model, tokenizer, trained


def _score(params: Params, model, tokenizer, frame: pd.DataFrame, label: str):
    """P(Yes) of a split's records (an empty list for no records), progress shown under ``label``."""
    from reasoningrec.chat import render_chat
    from reasoningrec.scoring import score_prompts

    if frame.empty:
        return []
    prompts = [render_chat(tokenizer, text) for text in frame["prompt_text"]]
    return score_prompts(model, tokenizer, prompts, params.llm.batch_size, progress=label)


def _valid_scores(params: Params, model, tokenizer, valid: pd.DataFrame, trained):
    """The validation P(Yes): the best epoch's, which the training kept, when they are the numbers
    scoring ``model`` now would give; otherwise scored now."""
    from reasoningrec.models import model_precision

    if trained is not None and reusable_valid_scores(
        trained, model_precision(model), params.llm.batch_size, len(valid)
    ):
        log.info(
            "score valid: the %d scores of the best epoch (%d), kept by the training", len(valid), trained.best_epoch
        )
        return trained.valid_scores
    return _score(params, model, tokenizer, valid, "score valid")


def reusable_valid_scores(trained, precision: str, batch_size: int, n_valid: int) -> bool:
    """Whether the training's validation scores equal a fresh scoring of its adapter: scored by one
    process (shards batch differently), in fp32 as the experiment scores now, in batches of the size
    it scores with. The same fp32 weights, prompts and batches give the same numbers
    (tests/test_experiment.py); the training fingerprint ties them to these validation records.
    bf16 is left out: on an H200 the training's bf16 scores differed from a fresh bf16 scoring of the
    saved adapter by up to 0.005 (2026-12-01)."""
    return (
        trained.valid_scores is not None
        and len(trained.valid_scores) == n_valid
        and trained.processes == 1
        and trained.precision == precision == "fp32"
        and trained.score_batch_size == batch_size
    )


def _explain(params: Params, model, tokenizer, test: pd.DataFrame, test_scores) -> dict[int, Explanation]:
    """Explanations of the chosen test records (:func:`reasoningrec.evaluation.explain_subset`)."""
    from reasoningrec.chat import render_chat
    from reasoningrec.evaluation import explain_subset
    from reasoningrec.scoring import explain

    chosen = explain_subset(test, params.evaluate.explain_limit)
    rows = [int(i) for i in chosen.index]
    generated = explain(
        model,
        tokenizer,
        [render_chat(tokenizer, t) for t in chosen["prompt_text"]],
        [test_scores[i] for i in rows],
        mode=params.evaluate.explanations,
        max_new_tokens=params.evaluate.explain_max_new_tokens,
        batch_size=params.llm.batch_size,
        engine=params.evaluate.explain_decode,
        progress="explain",
    )
    return dict(zip(rows, generated, strict=True))


def _evaluate(
    params: Params, valid, valid_scores, test, test_scores, explanations: dict[int, Explanation], seed: int
) -> tuple[dict[str, float], dict[str, str]]:
    """(metrics, extra MLflow params such as the BERTScore backbone)."""
    from reasoningrec.evaluation import evaluate_explanations, evaluate_scores
    from reasoningrec.scoring import scored_labels

    results = evaluate_scores(valid, valid_scores, test, test_scores, seed=seed)
    if not explanations:
        return results, {}
    rows = sorted(explanations)
    references = test.loc[rows, "reference"].tolist() if "reference" in test else [None] * len(rows)
    text_metrics, settings = evaluate_explanations(
        [explanations[i] for i in rows],
        references,
        scored_labels([test_scores[i] for i in rows]),
        model=params.evaluate.bertscore_model,
        num_layers=params.evaluate.bertscore_num_layers,
    )
    return {**results, **text_metrics}, settings


def _persist(out: Path, valid, valid_scores, test, test_scores, explanations, evidence, trained) -> pd.DataFrame:
    """predictions.parquet, explanations.parquet (the evidence of each explanation; empty for methods
    that do not explain), the test curves and the training curve; returns the predictions."""
    from reasoningrec import metrics
    from reasoningrec.io import atomic_path, write_parquet
    from reasoningrec.predictions import concat, predictions_frame

    predictions = concat([predictions_frame(valid, valid_scores), predictions_frame(test, test_scores, explanations)])
    write_parquet(out / "predictions.parquet", predictions)
    empty = pd.DataFrame(
        {
            "user_id": pd.Series(dtype="string"),
            "split": pd.Series(dtype="string"),
            "target_item": pd.Series(dtype="string"),
        }
    )
    write_parquet(out / "explanations.parquet", evidence if evidence is not None else empty)
    metrics.write_curves(test["label"].astype(int), test_scores, out / "plots", prefix="test_")
    if trained is not None and trained.history:
        with atomic_path(out / "plots" / "training.csv") as tmp:
            pd.DataFrame(trained.history).to_csv(tmp, index=False)
    return predictions


def _summarise(
    params: Params,
    dataset: str,
    spec: Method,
    k_shots: int,
    seed: int,
    out: Path,
    run_print: str,
    results: dict,
    extra_settings: dict,
    trained,
    n_valid: int,
    n_test: int,
    command: str | None,
) -> ExperimentSummary:
    from reasoningrec.tracking.provenance import provenance_tags

    settings = {**experiment_settings(params, dataset, spec), **extra_settings, "n_valid": n_valid, "n_test": n_test}
    history = []
    if trained is not None:
        settings["train_result"] = {
            key: getattr(trained, key)
            for key in (
                "best_epoch",
                "epochs_run",
                "stopped_early",
                "precision",
                "train_records",
                "seconds",
                "processes",
            )
        }
        history = [
            {"epoch": row["epoch"], "train_loss": row.get("train_loss"), "epoch_valid_auc": row.get("valid_auc")}
            for row in trained.history
        ]
    tags = {
        "variant": spec.variant,
        "fine_tuned": str(spec.fine_tuned).lower(),
        **({"command": command} if command else {}),
    }
    return ExperimentSummary(
        dataset=dataset,
        method=spec.name,
        k_shots=k_shots,
        seed=seed,
        variant=spec.variant,
        run_dir=str(out),
        fingerprint=run_print,
        metrics={k: _json_number(v) for k, v in results.items()},
        settings=settings,
        epoch_history=history,
        extra_tags=tags,
        provenance=provenance_tags(params, dataset),
        adapter=_relative(trained.adapter_dir, out) if trained is not None else None,
        bertscore_model=extra_settings.get("bertscore_model"),
    )


def _tracking_on(params: Params) -> bool:
    from reasoningrec.tracking.store import tracking_enabled

    return tracking_enabled(params)


# --------------------------------------------------------------------------- settings and fingerprint


def experiment_settings(params: Params, dataset: str, spec: Method) -> dict[str, Any]:
    """Every setting that shapes the result, logged as MLflow params."""
    dumped = params.model_dump(mode="json", by_alias=True)
    settings: dict[str, Any] = {
        "variant": spec.variant,
        "dataset_config": dumped["datasets"][dataset],
        "prepare": dumped["prepare"],
        "records": dumped["records"],
        "evaluate": dumped["evaluate"],
        "base_model": params.train.base_model,
        "llm_batch_size": params.llm.batch_size,
    }
    if spec.fine_tuned:
        settings["train"] = dumped["train"]
    return settings


def run_fingerprint(
    params: Params, dataset: str, method: str, k_shots: int, records: pd.DataFrame | None = None
) -> tuple[str, dict[str, Any]]:
    """(fingerprint, the settings it digests) of one run: every setting that shapes its result and
    the digest of the records it reads (``records``: the method's variant, read when not given).

    Left out because they do not change the numbers: where files live (``*path`` settings), the
    other K-shot sizes the records stage builds, the scoring batch size and the BERTScore backbone
    (a deferred BERTScore is computed later from the saved explanations), and ``train.processes`` (the
    same global batch spread over more devices)."""
    from reasoningrec.records.kshot import kshot_column
    from reasoningrec.records.stage import read_records

    spec = llm_method(method)
    settings = experiment_settings(params, dataset, spec)
    settings.pop("llm_batch_size", None)
    settings["dataset_config"] = {k: v for k, v in settings["dataset_config"].items() if not k.endswith("path")}
    settings["records"] = {k: v for k, v in settings["records"].items() if k != "k_shots"}
    settings["evaluate"] = {k: v for k, v in settings["evaluate"].items() if not k.startswith("bertscore")}
    if "train" in settings:
        settings["train"] = {k: v for k, v in settings["train"].items() if k != "processes"}
    if records is None:
        records = read_records(params.work_dir(dataset) / "records.parquet", spec.variant)
    columns = ["user_id", "split", "label", "prompt_text", "completion_text", "reference"]
    if spec.fine_tuned:
        columns.append(kshot_column(k_shots))
    settings["method"], settings["k_shots"] = method, int(k_shots)
    settings["records_digest"] = fingerprint.frame_digest(records, columns)
    return fingerprint.digest(settings), settings


def _relative(path: str | Path, root: Path) -> str:
    path = Path(path)
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)


def _json_number(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
