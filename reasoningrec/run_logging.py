"""An experiment's MLflow run and model version: logged now, or later from its ``metrics.json``.

:func:`log_and_register` is the last link of :func:`reasoningrec.experiment.run_experiment` when
tracking is on. A run made with tracking off (e.g. on a GPU box without the tracking store) keeps in
its :class:`~reasoningrec.experiment_summary.ExperimentSummary` everything the run needs, and
:func:`log_saved_run` logs it later — with the same params, metrics, epoch history and tags (the
``hardware``/``git_commit`` of the machine that ran it).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from reasoningrec.config import Params
    from reasoningrec.experiment_summary import ExperimentSummary

log = logging.getLogger(__name__)


def log_and_register(
    params: Params, summary: ExperimentSummary, predictions: pd.DataFrame, *, extra_tags: dict[str, str] | None = None
) -> ExperimentSummary:
    """Log the run (+ its adapter as a LoggedModel and a model version, when the summary names an
    adapter folder present on disk)."""
    from reasoningrec import serving, tracking

    out = Path(summary.run_dir)
    adapter = out / summary.adapter if summary.adapter else None
    artifacts = {"plots": out / "plots", "explanations": out / "explanations.parquet"}
    with tempfile.TemporaryDirectory(prefix="reasoningrec-pyfunc-") as tmp:
        model = None
        if adapter is not None:
            model = serving.pyfunc_model_arguments(
                adapter,
                tmp,
                batch_size=params.llm.batch_size,
                max_new_tokens=params.evaluate.explain_max_new_tokens,
                extra_config={
                    "domain": params.dataset(summary.dataset).domain,
                    "explanations": params.evaluate.explanations,
                },
                input_example=serving.example_request(params, summary.dataset, predictions),
            )
        run_id = tracking.log_run(
            params,
            dataset=summary.dataset,
            method=summary.method,
            k_shots=summary.k_shots,
            seed=summary.seed,
            settings=summary.settings,
            metrics=summary.metrics,
            epoch_history=summary.epoch_history,
            artifacts=artifacts,
            predictions=predictions,
            extra_tags={**summary.extra_tags, **(extra_tags or {})},
            provenance=summary.provenance,
            model=model,
        )
    registration = tracking.register_run_model(params, summary.dataset, run_id).to_dict() if adapter else None
    return summary.model_copy(update={"run_id": run_id, "registration": registration})


def log_saved_run(params: Params, run_dir: str | Path, *, bertscore_model: str | None = None) -> ExperimentSummary:
    """Log a run made with tracking off (its ``metrics.json`` + files, e.g. brought back from a GPU box).

    A deferred BERTScore is computed here with ``bertscore_model`` (default ``evaluate.bertscore_model``,
    or the embedded backbone when that is deferred too). The adapter is registered only if its folder
    is there; else the run is logged unregistered (``unregistered`` says why). Returns the updated
    summary, written back to ``metrics.json`` (a logged run is skipped next time).
    """
    from reasoningrec import metrics as metric_fns
    from reasoningrec.evaluation import DEFERRED_BERTSCORE_PARAM, bertscore_deferred, bertscore_metrics
    from reasoningrec.experiment_summary import ExperimentSummary

    run_dir = Path(run_dir)
    summary = ExperimentSummary.read(run_dir / "metrics.json")
    if summary.run_id:
        return summary
    predictions = pd.read_parquet(run_dir / "predictions.parquet")
    results = {k: v for k, v in summary.metrics.items() if v is not None}
    settings = dict(summary.settings)
    if settings.get("bertscore_model") == DEFERRED_BERTSCORE_PARAM:
        model = bertscore_model or params.evaluate.bertscore_model
        model = metric_fns.EMBEDDED_BERTSCORE if bertscore_deferred(model) else model
        layers = params.evaluate.bertscore_num_layers
        explained = predictions[(predictions["split"] == "test") & predictions["explanation"].notna()]
        scores, extra = bertscore_metrics(
            explained["explanation"].tolist(), explained["reference"].tolist(), model=model, num_layers=layers
        )
        results.update(scores)
        settings.update(extra)
        settings["evaluate"] = {
            **settings.get("evaluate", {}),
            "bertscore_model": model,
            "bertscore_num_layers": layers,
        }
    test = predictions[predictions["split"] == "test"]
    if not (run_dir / "plots" / "test_roc.png").is_file():  # PNGs stay behind on the GPU box: redrawn
        metric_fns.write_curves(test["label"].astype(int), test["p_yes"], run_dir / "plots", prefix="test_")
    update: dict = {
        "metrics": results,
        "settings": settings,
        "run_dir": str(run_dir),
        "bertscore_model": settings.get("bertscore_model"),
    }
    if summary.adapter and not (run_dir / summary.adapter).is_dir():
        log.warning("%s: adapter folder not brought back: logged without registering a model version", run_dir)
        update |= {"adapter": None, "unregistered": f"adapter folder {summary.adapter}/ not brought back"}
    summary = log_and_register(
        params, summary.model_copy(update=update), predictions, extra_tags={"logged_later": "true"}
    )
    summary.write(run_dir / "metrics.json")
    return summary
