"""Run a plan: every call of :func:`reasoningrec.pipeline.plan`, in order, through the completion rule.

This is the README's main job (``reasoningrec run``, ``make demo``): the pipeline of ``params.yaml``'s
``pipeline:`` section (by default the first 40 users of the paper authors' Fashion data, K = 16, two
epochs of the embedded SmolLM2) from raw files to a registered model. Calls that are up to date are
skipped, so a second run does nothing but print the summary again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from reasoningrec.completion import Outcome, execute
from reasoningrec.pipeline import plan

if TYPE_CHECKING:
    from reasoningrec.config import Params

log = logging.getLogger(__name__)


def run_plan(
    params: Params,
    datasets: Sequence[str] | None = None,
    *,
    methods: Sequence[str] | None = None,
    k_shots: Sequence[int] | None = None,
    seeds: Sequence[int] | None = None,
    through: str | None = None,
    force: bool = False,
    say: Callable[[str], None] = print,
    runner: str = "run",
    command: str | None = None,
) -> list[Outcome]:
    """Execute each dataset's plan (``pipeline:`` when not given); return every call's outcome."""
    outcomes: list[Outcome] = []
    for dataset in datasets or params.pipeline.datasets:
        calls = plan(params, dataset, methods, k_shots, seeds, through=through)
        for number, call in enumerate(calls, 1):
            say(f"[{dataset} {number}/{len(calls)}] {call.name} ...")
            started = time.perf_counter()
            extra = {"command": command} if command and call.stage.name in ("experiment", "baselines") else None
            outcome = execute(params, call, calls=calls, force=force, runner=runner, extra=extra)
            took = time.perf_counter() - started
            say(f"    {'done' if outcome.ran else 'up to date'} in {took:.1f} s")
            outcomes.append(outcome)
    return outcomes


def format_summary(
    outcomes: Sequence[Outcome], params: Params, *, seconds: float | None = None, examples: int = 2
) -> str:
    """What the user reads at the end: each experiment's figures, explanations, where to look next."""
    ran = sum(o.ran for o in outcomes)
    lines = [
        "",
        f"ReasoningRec: {len(outcomes)} stage calls, {ran} run, {len(outcomes) - ran} up to date"
        + (f", {seconds:.0f} s" if seconds is not None else ""),
    ]
    from reasoningrec.experiment_summary import ExperimentSummary

    for outcome in outcomes:
        if outcome.call.stage.name != "experiment":
            continue
        s = outcome.summary_as(ExperimentSummary)
        metrics = s.metrics
        lines.append(f"  {outcome.call.dataset} {s.method} K={s.k_shots} seed={s.seed}:")
        lines.append(
            f"    test AUC            {_fmt(metrics.get('test_auc'))}   (valid AUC {_fmt(metrics.get('valid_auc'))})"
        )
        if metrics.get("test_bertscore_f1") is not None:
            lines.append(
                f"    BERTScore F1        {_fmt(metrics['test_bertscore_f1'])}   (backbone: {s.bertscore_model})"
            )
        if metrics.get("explained"):
            lines.append(
                f"    explanations        {int(metrics['explained'])} written, parse failures "
                f"{_fmt(metrics.get('parse_failure_rate'))}, stated label = scored label "
                f"{_fmt(metrics.get('stated_label_agreement'))}"
            )
        registration = s.registration or {}
        if registration:
            lines.append(
                f"    registered model    {registration.get('registered_model')} version "
                f"{registration.get('version')} -> alias {registration.get('alias')}"
            )
        lines.append(f"    MLflow run          {s.run_id or 'not logged (tracking off)'}")
        lines.append(f"    outputs             {s.run_dir}")
        lines += [f"    {line}" for line in _examples(s.run_dir, examples)]
    user, item, dataset = _example_pair(outcomes)
    lines += [
        "",
        "Next:",
        "  reasoningrec ui                       # MLflow UI on http://127.0.0.1:5000",
        f"  reasoningrec explain -d {dataset} --user {user} --item {item}",
        "  dvc repro && dvc metrics show         # the same plan through DVC (nothing to do after this run)",
    ]
    return "\n".join(lines)


def _examples(run_dir: str, n: int) -> list[str]:
    """A few explanations the run wrote, with the scored P(Yes) and label they state."""
    from pathlib import Path

    import pandas as pd

    path = Path(run_dir) / "predictions.parquet"
    if n <= 0 or not path.is_file():
        return []
    frame = pd.read_parquet(path)
    frame = frame[frame["explanation"].notna()].head(n)
    lines = []
    for row in frame.itertuples(index=False):
        stated = {1: "Yes", 0: "No"}.get(row.stated_label if pd.notna(row.stated_label) else None, "none")
        text = " ".join(str(row.explanation).split())
        lines.append(
            f"example (user {row.user_id}, item {row.target_item}): P(Yes) {row.p_yes:.3f}, "
            f"Prediction: {stated} - {text[:160]}{'...' if len(text) > 160 else ''}"
        )
    return lines


def _example_pair(outcomes: Sequence[Outcome]) -> tuple[str, str, str]:
    """A (user, target item, dataset) of a test split, for the ``explain`` hint."""
    from pathlib import Path

    import pandas as pd

    from reasoningrec.experiment_summary import ExperimentSummary

    for outcome in outcomes:
        if outcome.call.stage.name != "experiment":
            continue
        path = Path(outcome.summary_as(ExperimentSummary).run_dir) / "predictions.parquet"
        if path.is_file():
            test = pd.read_parquet(path, columns=["user_id", "split", "target_item"])
            test = test[test["split"] == "test"]
            if len(test):
                return str(test["user_id"].iloc[0]), str(test["target_item"].iloc[0]), outcome.call.dataset
    return "<user>", "<item>", "<dataset>"


def _fmt(value: Any) -> str:
    """A metric for people: three decimals, or 'n/a' where it is undefined (e.g. one class only)."""
    if value is None or value != value:
        return "n/a"
    return f"{value:.3f}"
