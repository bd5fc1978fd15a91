"""One experiment = one (dataset, method, K, seed): train -> score -> metrics -> MLflow run -> registry.

Fine-tuned methods (``reasoningrec``, its ablations, ``tallrec``, ``label-only``) train a LoRA adapter
with :func:`reasoningrec.training.run_train`; zero-shot methods score the base model with no
training (K is 0, nothing is registered). Outputs go to ``<work_dir>/<dataset>/runs/<method>-k<K>-s<seed>/``::

    adapter/              the trained adapter (fine-tuned methods; written by training)
    train.json            training summary (fine-tuned methods)
    predictions.parquet   user_id, split, label, p_yes, explanation, reference, target_item
    plots/                ROC and calibration curves of the test split (CSV/JSON for DVC, PNG)
    metrics.json          every metric below, the MLflow run id and the registration
    fingerprint.json      what the run was made with (:func:`run_fingerprint`); a later call with
                          other settings or records moves the folder to ``runs/.superseded/``

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

from reasoningrec import fingerprint
from reasoningrec.errors import ConfigError

log = logging.getLogger(__name__)

# Zero-shot methods and the record variant they are asked with (the paper's two zero-shot rows).
ZERO_SHOT_VARIANTS = {"zeroshot-vanilla": "titles", "zeroshot-reasoningrec": "full"}
# Variants whose prompt asks for reasoning after the prediction (the others answer with a label).
REASONING_VARIANTS = frozenset({"full", "no-profile", "no-description"})
# ``evaluate.bertscore_model`` values that defer BERTScore (a GPU box without bert-score installed).
DEFERRED_BERTSCORE = frozenset({"none", "deferred"})
DEFERRED_BERTSCORE_PARAM = "deferred"
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
    out["explained"] = len(explanations)
    scores, settings = bertscore_metrics(
        [e.reasoning for e in explanations], references, model=model, num_layers=num_layers
    )
    return {**out, **scores}, settings


def bertscore_deferred(model: str) -> bool:
    """Whether ``evaluate.bertscore_model`` asks to skip BERTScore now (computed when the run is logged)."""
    return model.strip().lower() in DEFERRED_BERTSCORE


def bertscore_metrics(
    candidates: list, references: list, *, model: str, num_layers: int | None
) -> tuple[dict[str, float], dict[str, str]]:
    """BERTScore F1 of explanations against their references (pairs without a reference left out).

    Returns (metrics, params): ``test_bertscore_f1``, ``bertscore_pairs``, ``empty_explanation_rate``
    and the backbone's name. With a deferred ``model`` only the pair count is returned and the
    backbone param reads ``deferred``: explanations and references stay in predictions.parquet.
    """
    from reasoningrec import metrics

    pairs = [(str(c or "").strip(), strip_prediction(r)) for c, r in zip(candidates, references, strict=True)]
    pairs = [(c, r) for c, r in pairs if r]
    if not pairs:
        return {}, {}
    # An empty explanation (the model wrote only "Prediction: ...") shares nothing with its
    # reference: F1 0. bert-score itself cannot encode an empty string under transformers 5.
    written = [(c, r) for c, r in pairs if c]
    out: dict[str, float] = {"bertscore_pairs": len(pairs), "empty_explanation_rate": (len(pairs) - len(written)) / len(pairs)}
    if bertscore_deferred(model):
        return out, {"bertscore_model": DEFERRED_BERTSCORE_PARAM}
    f1 = [0.0] * (len(pairs) - len(written))
    backbone = "all-MiniLM-L6-v2 (embedded)" if model == metrics.EMBEDDED_BERTSCORE else model
    if written:
        score = metrics.bertscore_f1([c for c, _ in written], [r for _, r in written], model=model, num_layers=num_layers)
        f1 += score.per_item
        backbone, num_layers = score.backbone, score.num_layers
    out["test_bertscore_f1"] = float(sum(f1) / len(f1))
    return out, {"bertscore_model": backbone, "bertscore_num_layers": str(num_layers)}


# --------------------------------------------------------------------------- the stage


def run_experiment(params, dataset: str, method: str, k_shots: int, seed: int, *,
                   command: str | None = None) -> dict[str, Any]:
    """Train (or not, for zero-shot) -> score valid/test -> explain -> metrics -> MLflow run -> registry.

    ``command``: what reproduces the run (the CLI line, a harness invocation), kept as its
    ``command`` tag; the report shows it in the provenance table.

    Returns the summary also written to ``<run dir>/metrics.json``: metrics, ``run_id`` and, for
    fine-tuned methods, ``registration`` (version and the alias it got).
    """
    from reasoningrec import metrics as metric_fns
    from reasoningrec import scoring, tracking
    from reasoningrec.io import write_json, write_parquet
    from reasoningrec.records import read_records, render_chat

    started = time.perf_counter()
    params.dataset(dataset)  # unknown dataset -> a clear error before any work
    variant, fine_tuned = method_variant(method)
    if not fine_tuned and k_shots != 0:
        log.info("%s is zero-shot: K=%s ignored, logged as K=0", method, k_shots)
        k_shots = 0
    out = run_dir(params, dataset, method, k_shots, seed)
    records = read_records(params.work_dir(dataset) / "records.parquet", variant)
    # A run folder made with other settings or records is moved aside, never resumed or overwritten.
    run_print, printed = run_fingerprint(params, dataset, method, k_shots, records)
    fingerprint.claim(out, run_print, printed)

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
            engine=params.evaluate.explain_decode,
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
    extra_tags = {"variant": variant, "fine_tuned": str(fine_tuned).lower(), **({"command": command} if command else {})}
    summary = {
        "dataset": dataset, "method": method, "k_shots": k_shots, "seed": seed, "variant": variant,
        "run_id": None, "metrics": {k: _json_number(v) for k, v in results.items()},
        "registration": None, "run_dir": str(out), "fingerprint": run_print,
        "bertscore_model": settings_extra.get("bertscore_model"),
    }
    if tracking.tracking_enabled(params):
        summary["run_id"], summary["registration"] = _log_and_register(
            params, out, dataset=dataset, method=method, k_shots=k_shots, seed=seed, settings=settings,
            metrics=results, history=history, predictions=predictions, extra_tags=extra_tags,
            adapter=Path(train_summary["adapter_dir"]) if fine_tuned else None,
        )
    else:
        # Everything log_run needs, to log the run later on another machine (log_saved_run).
        summary["tracking"] = {
            "logged": False, "settings": settings, "epoch_history": history, "extra_tags": extra_tags,
            "provenance": tracking.provenance_tags(params, dataset),
            "adapter": _relative(train_summary["adapter_dir"], out) if fine_tuned else None,
        }
    summary["seconds"] = round(time.perf_counter() - started, 1)
    write_json(out / "metrics.json", summary)
    log.info("%s %s K=%s seed=%s: test AUC %.4f (run %s)", dataset, method, k_shots, seed,
             results.get("test_auc", math.nan), summary["run_id"] or "not logged: tracking off")
    return summary


def _log_and_register(
    params, out: Path, *, dataset: str, method: str, k_shots: int, seed: int, settings: dict,
    metrics: dict, history: list[dict], predictions: pd.DataFrame, extra_tags: dict[str, str],
    adapter: Path | None, provenance: dict[str, str] | None = None,
) -> tuple[str, dict | None]:
    """The MLflow run of an experiment (+ its adapter as a pyfunc model version, when given)."""
    from reasoningrec import serving, tracking

    artifacts = {"plots": out / "plots"}
    with tempfile.TemporaryDirectory(prefix="reasoningrec-pyfunc-") as tmp:
        if adapter is not None:
            artifacts["adapter"] = adapter
            artifacts[tracking.MODEL_ARTIFACT] = serving.save_pyfunc_model(
                adapter, Path(tmp) / "model", batch_size=params.llm.batch_size,
                max_new_tokens=params.evaluate.explain_max_new_tokens,
                extra_config={"domain": params.dataset(dataset).domain},
            )
        run_id = tracking.log_run(
            params, dataset=dataset, method=method, k_shots=k_shots, seed=seed, settings=settings,
            metrics=metrics, epoch_history=history, artifacts=artifacts, predictions=predictions,
            extra_tags=extra_tags, provenance=provenance,
        )
    registration = tracking.register_run_model(params, dataset, run_id).to_dict() if adapter is not None else None
    return run_id, registration


def log_saved_run(params, run_dir: str | Path, *, bertscore_model: str | None = None) -> dict[str, Any]:
    """Log a run made with tracking off (its ``metrics.json`` + files, e.g. brought back from a GPU
    box) as :func:`run_experiment` would have: same params, metrics, epoch history, tags (the
    ``hardware``/``git_commit`` of the machine that ran it), plots and predictions. A deferred
    BERTScore is computed here with ``bertscore_model`` (default ``evaluate.bertscore_model``, or
    the embedded backbone when that is deferred too). The adapter is registered only if its folder
    is there; else the run is logged unregistered (``registration`` null, ``unregistered`` says why).

    Returns the updated summary, written back to ``metrics.json`` (a logged run is skipped next time).
    """
    from reasoningrec import metrics as metric_fns
    from reasoningrec.errors import DataError
    from reasoningrec.io import read_json, write_json

    run_dir = Path(run_dir)
    summary = read_json(run_dir / "metrics.json")
    if summary.get("run_id"):
        return summary
    saved = summary.get("tracking")
    missing = [key for key in ("settings", "epoch_history", "extra_tags", "provenance") if key not in (saved or {})]
    if missing:
        raise DataError(f"{run_dir / 'metrics.json'}: field 'tracking' lacks {missing}: "
                        "expected a run made with tracking off (tracking.tracking_uri: none)")
    predictions = pd.read_parquet(run_dir / "predictions.parquet")
    results = {k: v for k, v in summary["metrics"].items() if v is not None}
    settings = dict(saved["settings"])
    if settings.get("bertscore_model") == DEFERRED_BERTSCORE_PARAM:
        model = bertscore_model or params.evaluate.bertscore_model
        model = metric_fns.EMBEDDED_BERTSCORE if bertscore_deferred(model) else model
        layers = params.evaluate.bertscore_num_layers
        explained = predictions[(predictions["split"] == "test") & predictions["explanation"].notna()]
        scores, extra = bertscore_metrics(explained["explanation"].tolist(), explained["reference"].tolist(),
                                          model=model, num_layers=layers)
        results.update(scores)
        settings.update(extra)
        settings["evaluate"] = {**settings.get("evaluate", {}), "bertscore_model": model, "bertscore_num_layers": layers}
    test = predictions[predictions["split"] == "test"]
    if not (run_dir / "plots" / "test_roc.png").is_file():  # PNGs stay behind on the GPU box: redrawn
        metric_fns.write_curves(test["label"].astype(int), test["p_yes"], run_dir / "plots", prefix="test_")
    adapter = run_dir / saved["adapter"] if saved.get("adapter") else None
    if adapter is not None and not adapter.is_dir():
        log.warning("%s: adapter folder not brought back: logged without registering a model version", run_dir)
        summary["unregistered"] = f"adapter folder {adapter.name}/ not brought back"
        adapter = None
    summary["run_id"], summary["registration"] = _log_and_register(
        params, run_dir, dataset=summary["dataset"], method=summary["method"], k_shots=summary["k_shots"],
        seed=summary["seed"], settings=settings, metrics=results, history=saved["epoch_history"],
        predictions=predictions, extra_tags={**saved["extra_tags"], "logged_later": "true"},
        adapter=adapter, provenance=saved["provenance"],
    )
    summary["metrics"] = {k: _json_number(v) for k, v in results.items()}
    summary["bertscore_model"] = settings.get("bertscore_model")
    summary["run_dir"] = str(run_dir)
    summary["tracking"] = {**saved, "logged": True}
    write_json(run_dir / "metrics.json", summary)
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


def run_fingerprint(params, dataset: str, method: str, k_shots: int,
                    records: pd.DataFrame | None = None) -> tuple[str, dict[str, Any]]:
    """(fingerprint, the settings it digests) of one run: every setting that shapes its result and
    the digest of the records it reads (``records``: the method's variant, read when not given).

    Left out because they do not change the numbers: where files live (``*path`` settings), the
    other K-shot sizes the records stage builds, the scoring batch size and the BERTScore backbone
    (a deferred BERTScore is computed later from the saved explanations)."""
    from reasoningrec.records import kshot_column, read_records

    variant, fine_tuned = method_variant(method)
    settings = experiment_settings(params, dataset, variant, fine_tuned)
    settings.pop("llm_batch_size", None)
    settings["dataset_config"] = {k: v for k, v in settings["dataset_config"].items() if not k.endswith("path")}
    settings["records"] = {k: v for k, v in settings["records"].items() if k != "k_shots"}
    settings["evaluate"] = {k: v for k, v in settings["evaluate"].items() if not k.startswith("bertscore")}
    if records is None:
        records = read_records(params.work_dir(dataset) / "records.parquet", variant)
    columns = ["user_id", "split", "label", "prompt_text", "completion_text", "reference"]
    if fine_tuned:
        columns.append(kshot_column(k_shots))
    settings["method"], settings["k_shots"] = method, int(k_shots)
    settings["records_digest"] = fingerprint.frame_digest(records, columns)
    return fingerprint.digest(settings), settings


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


def _relative(path: str | Path, root: Path) -> str:
    path = Path(path)
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)


def _json_number(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
