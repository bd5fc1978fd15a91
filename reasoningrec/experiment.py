"""One experiment = one (dataset, method, K, seed): train -> score -> metrics -> MLflow run -> registry.

Fine-tuned methods (``reasoningrec``, its ablations, ``tallrec``, ``label-only``) train a LoRA adapter
with :func:`reasoningrec.training.run_train`; zero-shot methods score the base model with no
training (K is 0, nothing is registered). Outputs go to ``<work_dir>/<dataset>/runs/<method>-k<K>-s<seed>/``::

    adapter/              the trained adapter (fine-tuned methods; written by training)
    train.json            training summary (fine-tuned methods)
    predictions.parquet   user_id, split, label, p_yes, explanation, reference, target_item
    plots/                ROC and calibration curves of the test split (CSV/JSON for DVC, PNG)
    metrics.json          every metric below, the MLflow run id and the registration

Metrics (MLflow run contract, docs/architecture.md): ``valid_auc``, ``test_auc``, ``test_accuracy``,
``test_log_loss``, ``test_ece``, ``test_auc_ci_low/high`` (bootstrap), and for methods that write
reasoning ``test_bertscore_f1`` (param ``bertscore_model``) and ``parse_failure_rate``.
"""

from __future__ import annotations

import logging
import math
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from reasoningrec.errors import ConfigError

log = logging.getLogger(__name__)

# Zero-shot methods and the record variant they are asked with (the paper's two zero-shot rows).
ZERO_SHOT_VARIANTS = {"zeroshot-vanilla": "titles", "zeroshot-reasoningrec": "full"}
# Variants whose prompt asks for reasoning after the prediction (the others answer with a label).
REASONING_VARIANTS = frozenset({"full", "no-profile", "no-description"})
_LEADING_PREDICTION = re.compile(r"^\s*Prediction\s*:\s*\**\s*(yes|no)\b[\s.:*-]*", re.IGNORECASE)


def method_variant(method: str) -> tuple[str, bool]:
    """(record variant, fine-tuned?) of an LLM method; ``ConfigError`` listing the known ones."""
    from reasoningrec.records import METHOD_VARIANTS

    if method in METHOD_VARIANTS:
        return METHOD_VARIANTS[method], True
    if method in ZERO_SHOT_VARIANTS:
        return ZERO_SHOT_VARIANTS[method], False
    known = ", ".join([*METHOD_VARIANTS, *ZERO_SHOT_VARIANTS])
    raise ConfigError(f"unknown LLM method {method!r} (known: {known}; sasrec/caser/heuristics: `reasoningrec baselines`)")


def run_dir(params, dataset: str, method: str, k_shots: int, seed: int) -> Path:
    """``<work_dir>/<dataset>/runs/<method>-k<K>-s<seed>``."""
    return params.work_dir(dataset) / "runs" / f"{method}-k{k_shots}-s{seed}"


def strip_prediction(text: Any) -> str:
    """Reasoning text without a leading ``Prediction: Yes|No`` line (references may carry one).

    Missing references (None, NaN from Parquet) give an empty string.
    """
    if not isinstance(text, str):
        return ""
    return _LEADING_PREDICTION.sub("", text, count=1).strip()


def explain_subset(test: pd.DataFrame, limit: int | None) -> pd.DataFrame:
    """Test records to write explanations for: those with a reference first (BERTScore needs one),
    in file order, at most ``limit`` (``None`` = all)."""
    has_reference = test["reference"].map(lambda r: bool(strip_prediction(r))) if "reference" in test else None
    ordered = test if has_reference is None else pd.concat([test[has_reference], test[~has_reference]])
    return ordered if limit is None else ordered.head(limit)


# --------------------------------------------------------------------------- evaluation (pure)


def evaluate_scores(
    valid: pd.DataFrame, valid_scores, test: pd.DataFrame, test_scores, *, seed: int
) -> dict[str, float]:
    """Classification metrics of P(Yes) on valid and test (AUC, accuracy, log-loss, ECE, AUC CI)."""
    from reasoningrec import metrics

    out: dict[str, float] = {}
    if len(valid):
        out["valid_auc"] = metrics.auc(valid["label"].astype(int), valid_scores)
    test_labels = test["label"].astype(int)
    for name, value in metrics.classification_metrics(test_labels, test_scores).items():
        out[f"test_{name}"] = value
    low, high = metrics.bootstrap_auc_ci(test_labels, test_scores, seed=seed)
    out["test_auc_ci_low"], out["test_auc_ci_high"] = low, high
    return out


def evaluate_explanations(
    explanations: list, references: list[str | None], *, model: str, num_layers: int | None
) -> tuple[dict[str, float], dict[str, str]]:
    """Parse-failure rate over every explanation; BERTScore F1 over those with a reference.

    Returns (metrics, params): params names the BERTScore backbone, since scores from different
    backbones are not comparable.
    """
    from reasoningrec import metrics

    out: dict[str, float] = {"parse_failure_rate": metrics.parse_failure_rate([e.label for e in explanations])}
    pairs = [(e.reasoning.strip(), strip_prediction(r)) for e, r in zip(explanations, references, strict=True)]
    pairs = [(c, r) for c, r in pairs if r]
    out["explained"] = len(explanations)
    if not pairs:
        return out, {}
    # An empty explanation (the model wrote only "Prediction: ...") shares nothing with its
    # reference: F1 0. bert-score itself cannot encode an empty string under transformers 5.
    written = [(c, r) for c, r in pairs if c]
    f1 = [0.0] * (len(pairs) - len(written))
    backbone = "all-MiniLM-L6-v2 (embedded)" if model == metrics.EMBEDDED_BERTSCORE else model
    if written:
        score = metrics.bertscore_f1([c for c, _ in written], [r for _, r in written], model=model, num_layers=num_layers)
        f1 += score.per_item
        backbone, num_layers = score.backbone, score.num_layers
    out["test_bertscore_f1"] = float(sum(f1) / len(f1))
    out["bertscore_pairs"] = len(pairs)
    out["empty_explanation_rate"] = (len(pairs) - len(written)) / len(pairs)
    return out, {"bertscore_model": backbone, "bertscore_num_layers": str(num_layers)}


# --------------------------------------------------------------------------- the stage


def run_experiment(params, dataset: str, method: str, k_shots: int, seed: int) -> dict[str, Any]:
    """Train (or not, for zero-shot) -> score valid/test -> explain -> metrics -> MLflow run -> registry.

    Returns the summary also written to ``<run dir>/metrics.json``: metrics, ``run_id`` and, for
    fine-tuned methods, ``registration`` (version and the alias it got).
    """
    from reasoningrec import metrics as metric_fns
    from reasoningrec import scoring, serving, tracking
    from reasoningrec.io import write_json, write_parquet
    from reasoningrec.records import read_records, render_chat

    started = time.perf_counter()
    params.dataset(dataset)  # unknown dataset -> a clear error before any work
    variant, fine_tuned = method_variant(method)
    if not fine_tuned and k_shots != 0:
        log.info("%s is zero-shot: K=%s ignored, logged as K=0", method, k_shots)
        k_shots = 0
    out = run_dir(params, dataset, method, k_shots, seed)
    out.mkdir(parents=True, exist_ok=True)
    records = read_records(params.work_dir(dataset) / "records.parquet", variant)

    # 1. Model: a freshly trained adapter, or the base model as is --------------------------------
    train_summary: dict[str, Any] = {}
    if fine_tuned:
        from reasoningrec.training import run_train

        train_summary = run_train(params, dataset, method, k_shots, seed, out_dir=out)
        model, tokenizer, _ = scoring.load_adapter(train_summary["adapter_dir"])
    else:
        model, tokenizer = _load_base(params.train.base_model)

    # 2. P(Yes) on valid and test -----------------------------------------------------------------
    batch = params.llm.batch_size
    valid = records[records["split"] == "valid"].reset_index(drop=True)
    test = records[records["split"] == "test"].reset_index(drop=True)
    if test.empty:
        raise ConfigError(f"{params.work_dir(dataset) / 'records.parquet'}: no test records of variant {variant!r}")
    answer_ids = scoring.answer_token_ids(tokenizer)

    def score(frame: pd.DataFrame):
        prompts = [render_chat(tokenizer, text) for text in frame["prompt_text"]]
        return scoring.score_prompts(model, tokenizer, prompts, batch, answer_ids=answer_ids)

    valid_scores = score(valid) if len(valid) else []
    test_scores = score(test)
    results = evaluate_scores(valid, valid_scores, test, test_scores, seed=seed)

    # 3. Explanations (methods whose prompt asks for reasoning) -----------------------------------
    explanations: dict[int, str] = {}
    settings_extra: dict[str, str] = {}
    if variant in REASONING_VARIANTS:
        chosen = explain_subset(test, params.evaluate.explain_limit)
        generated = scoring.generate_explanations(
            model, tokenizer, [render_chat(tokenizer, t) for t in chosen["prompt_text"]],
            max_new_tokens=params.evaluate.explain_max_new_tokens, batch_size=batch,
        )
        explanations = {int(i): e.reasoning for i, e in zip(chosen.index, generated, strict=True)}
        references = chosen["reference"].tolist() if "reference" in chosen else [None] * len(chosen)
        text_metrics, settings_extra = evaluate_explanations(
            generated, references,
            model=params.evaluate.bertscore_model, num_layers=params.evaluate.bertscore_num_layers,
        )
        results.update(text_metrics)

    # 4. Files: predictions, curves, metrics ------------------------------------------------------
    predictions = predictions_frame(valid, valid_scores, test, test_scores, explanations)
    write_parquet(out / "predictions.parquet", predictions)
    metric_fns.write_curves(test["label"].astype(int), test_scores, out / "plots", prefix="test_")
    if fine_tuned and train_summary.get("history"):
        _write_history(out / "plots" / "training.csv", train_summary["history"])

    # 5. MLflow run (+ registry for adapters) ------------------------------------------------------
    settings = {
        **experiment_settings(params, dataset, variant, fine_tuned),
        **settings_extra,
        "n_valid": len(valid), "n_test": len(test),
    }
    if fine_tuned:
        settings["train_result"] = {
            key: train_summary.get(key)
            for key in ("best_epoch", "epochs_run", "stopped_early", "precision", "train_records", "seconds")
        }
    history = [
        {"epoch": row["epoch"], "train_loss": row.get("train_loss"), "epoch_valid_auc": row.get("valid_auc")}
        for row in train_summary.get("history", [])
    ]
    artifacts = {"plots": out / "plots"}
    with tempfile.TemporaryDirectory(prefix="reasoningrec-pyfunc-") as tmp:
        if fine_tuned:
            adapter = Path(train_summary["adapter_dir"])
            artifacts["adapter"] = adapter
            artifacts[tracking.MODEL_ARTIFACT] = serving.save_pyfunc_model(
                adapter, Path(tmp) / "model", batch_size=batch,
                max_new_tokens=params.evaluate.explain_max_new_tokens,
                extra_config={"domain": params.dataset(dataset).domain},
            )
        run_id = tracking.log_run(
            params, dataset=dataset, method=method, k_shots=k_shots, seed=seed, settings=settings,
            metrics=results, epoch_history=history, artifacts=artifacts, predictions=predictions,
            extra_tags={"variant": variant, "fine_tuned": str(fine_tuned).lower()},
        )
    registration = tracking.register_run_model(params, dataset, run_id).to_dict() if fine_tuned else None

    summary = {
        "dataset": dataset, "method": method, "k_shots": k_shots, "seed": seed, "variant": variant,
        "run_id": run_id, "metrics": {k: _json_number(v) for k, v in results.items()},
        "registration": registration, "run_dir": str(out),
        "bertscore_model": settings_extra.get("bertscore_model"),
        "seconds": round(time.perf_counter() - started, 1),
    }
    write_json(out / "metrics.json", summary)
    log.info("%s %s K=%s seed=%s: test AUC %.4f (run %s)", dataset, method, k_shots, seed,
             results.get("test_auc", math.nan), run_id)
    return summary


def predictions_frame(valid, valid_scores, test, test_scores, explanations: dict[int, str]) -> pd.DataFrame:
    """Rows of ``predictions.parquet`` (architecture.md schema, plus ``target_item``)."""
    frames = []
    for split_frame, scores, explained in ((valid, valid_scores, {}), (test, test_scores, explanations)):
        if not len(split_frame):
            continue
        reference = split_frame["reference"] if "reference" in split_frame else pd.Series([None] * len(split_frame))
        frames.append(
            pd.DataFrame(
                {
                    "user_id": split_frame["user_id"].astype(str).to_numpy(),
                    "split": split_frame["split"].astype(str).to_numpy(),
                    "label": split_frame["label"].astype("int8").to_numpy(),
                    "p_yes": pd.Series(scores, dtype="float64").to_numpy(),
                    "explanation": pd.Series([explained.get(i) for i in range(len(split_frame))], dtype="string").to_numpy(),
                    "reference": pd.Series(
                        [strip_prediction(r) or None for r in reference], dtype="string"
                    ).to_numpy(),
                    "target_item": (
                        split_frame["target_item"].astype(str).to_numpy() if "target_item" in split_frame
                        else pd.Series([None] * len(split_frame), dtype="string").to_numpy()
                    ),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def experiment_settings(params, dataset: str, variant: str, fine_tuned: bool) -> dict[str, Any]:
    """Every setting that shapes the result, logged as MLflow params."""
    dumped = params.model_dump(mode="json", by_alias=True)
    settings: dict[str, Any] = {
        "variant": variant,
        "dataset_config": dumped["datasets"][dataset],
        "prepare": dumped["prepare"],
        "records": dumped["records"],
        "evaluate": dumped["evaluate"],
        "base_model": params.train.base_model,
        "llm_batch_size": params.llm.batch_size,
    }
    if fine_tuned:
        settings["train"] = dumped["train"]
    return settings


def _load_base(base_model: str):
    """The base model for zero-shot scoring (full precision on CPU, bf16 on CUDA)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from reasoningrec.scoring import default_dtype, resolve_base_model

    path = resolve_base_model(base_model)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=default_dtype()).to(device)
    model.eval()
    return model, tokenizer


def _write_history(path: Path, history: list[dict]) -> None:
    from reasoningrec.io import atomic_path

    with atomic_path(path) as tmp:
        pd.DataFrame(history).to_csv(tmp, index=False)


def _json_number(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
