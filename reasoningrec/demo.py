"""The README's main job: every stage of the pipeline, end to end, on a small real slice.

Sized for a 2-core CPU with no internet (``demo:`` in params.yaml): the first ``demo.max_users``
users of ``demo.dataset``, the large-LLM texts imported where the dataset ships them (the paper's
processed data) and written by the embedded SmolLM2 otherwise, plus a few item descriptions written
by the embedded model to exercise the synthesis stage; one K-shot LoRA fine-tune, P(Yes) scoring,
explanations, BERTScore, an MLflow run and a registered ``champion``. ``full=True`` runs the
dataset's real sizes with the settings of params.yaml unchanged.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reasoningrec.config import Params

DEMO_METHOD = "reasoningrec"


def demo_params(params: Params, full: bool = False) -> Params:
    """Settings of the demo run: outputs under ``<work_dir>/demo`` and the demo's small sizes."""
    demo = params.demo
    paths = params.paths.model_copy(update={"work_dir": params.paths.work_dir / "demo"})
    tracking = params.tracking.model_copy(update={"model_prefix": f"{params.tracking.model_prefix}-demo"})
    if full:
        return params.model_copy(update={"paths": paths, "tracking": tracking})
    records = params.records.model_copy(
        update={
            "k_shots": [demo.k_shots],
            "valid_size": demo.valid_size,
            "max_length": demo.max_length,
            "variants": ["full"],
        }
    )
    accumulate = max(1, params.train.batch_size * params.train.grad_accum // demo.train_batch_size)
    train = params.train.model_copy(
        update={"epochs": demo.epochs, "batch_size": demo.train_batch_size, "grad_accum": accumulate}
    )
    evaluate = params.evaluate.model_copy(
        update={"explain_limit": demo.explain_limit, "explain_max_new_tokens": demo.explain_max_new_tokens}
    )
    return params.model_copy(
        update={"paths": paths, "records": records, "train": train, "evaluate": evaluate, "tracking": tracking}
    )


def _copy_inputs(src: Path, dst: Path, names: tuple[str, ...]) -> None:
    from reasoningrec.io import atomic_path

    for name in names:
        if (src / name).exists():
            with atomic_path(dst / name) as tmp:
                shutil.copyfile(src / name, tmp)


def run_demo(
    params: Params,
    dataset: str | None = None,
    *,
    full: bool = False,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run every stage for the demo slice; return a summary with each stage's figures and timing."""
    from reasoningrec.data.ingest import run_ingest
    from reasoningrec.data.prepare import run_prepare
    from reasoningrec.experiment import run_experiment
    from reasoningrec.records import run_records
    from reasoningrec.synthesis import run_describe, run_profile, run_reason
    from reasoningrec.validation import run_validation

    params = demo_params(params, full)
    dataset = dataset or params.demo.dataset
    config = params.dataset(dataset)
    out = params.work_dir(dataset)
    k_shots = params.records.k_shots[0] if not full else max(params.records.k_shots)
    max_users = None if full else params.demo.max_users
    timings: dict[str, float] = {}
    results: dict[str, Any] = {"dataset": dataset, "work_dir": str(out)}

    def stage(name: str, fn: Callable[[], Any]) -> Any:
        say(f"[{len(timings) + 1}] {name} ...")
        started = time.perf_counter()
        value = fn()
        timings[name] = round(time.perf_counter() - started, 1)
        say(f"    done in {timings[name]} s")
        return value

    results["ingest"] = stage("ingest", lambda: run_ingest(params, dataset))
    stage("validate interactions", lambda: run_validation(params, dataset, "interactions"))
    results["prepare"] = stage("prepare", lambda: run_prepare(params, dataset, max_users=max_users))
    stage("validate samples", lambda: run_validation(params, dataset, "samples"))

    if config.source == "paper" or config.texts_path:
        from reasoningrec.importer import run_import

        results["texts"] = stage("import large-LLM texts", lambda: run_import(params, dataset))
        if params.demo.synthesize_items and not full:
            # The embedded model describes a few items beside the imported texts (which training keeps:
            # a 135M model's descriptions are no substitute for a large LLM's).
            side = out / "embedded-synthesis"
            _copy_inputs(out, side, ("items.parquet", "item_reviews.parquet", "samples.parquet"))
            results["embedded_describe"] = stage(
                f"describe {params.demo.synthesize_items} items with the embedded model",
                lambda: run_describe(params, dataset, side, limit=params.demo.synthesize_items),
            )
    else:
        results["describe"] = stage("describe items (LLM)", lambda: run_describe(params, dataset))
        results["profile"] = stage("profile users (LLM)", lambda: run_profile(params, dataset))
        results["reason"] = stage("reasoning ground truth (LLM)", lambda: run_reason(params, dataset))

    results["records"] = stage("build records", lambda: run_records(params, dataset))
    experiment = stage(
        f"train + evaluate {DEMO_METHOD} (K={k_shots})",
        lambda: run_experiment(params, dataset, DEMO_METHOD, k_shots, params.train.seed),
    )
    results["experiment"] = experiment
    results["timings_s"] = timings
    results["total_s"] = round(sum(timings.values()), 1)
    return results


def format_summary(results: dict[str, Any], params: Params) -> str:
    """What the user reads at the end: the figures and where to look next."""
    exp = results["experiment"]
    metrics = exp.metrics
    registration = exp.registration or {}
    lines = [
        "",
        f"ReasoningRec demo on {results['dataset']} finished in {results['total_s']} s",
        f"  test AUC            {_fmt(metrics.get('test_auc'))}   (valid AUC {_fmt(metrics.get('valid_auc'))})",
    ]
    if metrics.get("test_bertscore_f1") is not None:
        backbone = exp.bertscore_model or params.evaluate.bertscore_model
        lines.append(f"  BERTScore F1        {_fmt(metrics['test_bertscore_f1'])}   (backbone: {backbone})")
    if registration:
        lines.append(
            f"  registered model    {registration.get('registered_model')} version {registration.get('version')}"
            f" -> alias {registration.get('alias')}"
        )
    user, item = _example_pair(exp)
    lines += [
        f"  MLflow run          {exp.run_id}",
        f"  outputs             {results['work_dir']}",
        f"  predictions         {Path(exp.run_dir) / 'predictions.parquet'}",
        "",
        "Next:",
        "  reasoningrec ui                       # MLflow UI on http://127.0.0.1:5000",
        f"  reasoningrec explain --demo -d {results['dataset']} --user {user} --item {item}",
        "  reasoningrec report                   # docs/results.md from the MLflow runs",
    ]
    return "\n".join(lines)


def _example_pair(experiment) -> tuple[str, str]:
    """A (user, target item) of the demo's test split, for the ``explain`` hint."""
    import pandas as pd

    path = Path(experiment.run_dir) / "predictions.parquet"
    if path.is_file():
        test = pd.read_parquet(path, columns=["user_id", "split", "target_item"])
        test = test[test["split"] == "test"]
        if len(test):
            return str(test["user_id"].iloc[0]), str(test["target_item"].iloc[0])
    return "<user>", "<item>"


def _fmt(value: float | None) -> str:
    """A metric for people: three decimals, or 'n/a' where it is undefined (e.g. one class only)."""
    if value is None or value != value:
        return "n/a"
    return f"{value:.3f}"
