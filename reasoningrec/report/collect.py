"""Reading the report's runs from MLflow: finished contract runs, newest per seed, with bootstrap CIs."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from reasoningrec.report.cells import RunRecord, latest_per_seed

if TYPE_CHECKING:
    from reasoningrec.config import Params


def collect_runs(params: Params, n_bootstrap: int = 1000) -> tuple[list[RunRecord], str]:
    """Every finished contract run of the experiment (newest per seed), with bootstrap CIs when possible."""
    from reasoningrec.tracking import experiment_id, get_client, tracking_uri

    client = get_client(params)
    exp = experiment_id(client, params)
    records, token = [], None
    while True:
        page = client.search_runs(
            [exp], filter_string="attributes.status = 'FINISHED'", max_results=1000, page_token=token
        )
        for run in page:
            tags = run.data.tags
            if not all(tags.get(key) for key in ("dataset", "method", "k_shots", "seed")):
                continue
            records.append(
                RunRecord(
                    run_id=run.info.run_id,
                    dataset=tags["dataset"],
                    method=tags["method"],
                    k_shots=tags["k_shots"],
                    seed=tags["seed"],
                    metrics=dict(run.data.metrics),
                    params=dict(run.data.params),
                    tags=dict(tags),
                    start_time=run.info.start_time or 0,
                )
            )
        token = page.token
        if not token:
            break
    records = latest_per_seed(records)
    if n_bootstrap:
        records = [_with_ci(client, r, n_bootstrap) for r in records]
    return records, f"tracking store {_portable(tracking_uri(params))}, experiment {params.tracking.experiment!r}"


def _portable(uri: str) -> str:
    """The store's URI with this checkout's absolute path made relative (reports are committed)."""
    cwd = os.getcwd().rstrip("/") + "/"
    return uri.replace(f"sqlite:///{cwd}", "sqlite:///").replace(cwd, "")


def _with_ci(client, record: RunRecord, n_bootstrap: int) -> RunRecord:
    """Attach the bootstrap 95% interval of test AUC from the run's predictions artifact, if it has one."""
    import dataclasses
    import tempfile

    import pandas as pd

    from reasoningrec.metrics import bootstrap_auc_ci
    from reasoningrec.tracking import PREDICTIONS_ARTIFACT

    try:
        with tempfile.TemporaryDirectory(prefix="reasoningrec-report-") as tmp:
            frame = pd.read_parquet(client.download_artifacts(record.run_id, PREDICTIONS_ARTIFACT, tmp))
    except Exception:  # no predictions artifact (or unreadable): the std rule alone decides
        return record
    test = frame[frame["split"] == "test"] if "split" in frame.columns else frame
    if test.empty or not {"label", "p_yes"} <= set(test.columns):
        return record
    scores = None
    if "user_id" in test.columns:  # one test record per user; repeated ids keep their first row
        unique = test.drop_duplicates("user_id")
        scores = unique.set_index(unique["user_id"].astype(str))[["label", "p_yes"]]
    return dataclasses.replace(
        record, test_ci=bootstrap_auc_ci(test["label"], test["p_yes"], n=n_bootstrap), test_scores=scores
    )


EXPLANATIONS_ARTIFACT = "explanations/explanations.parquet"


def collect_examples(params: Params, records: list[RunRecord]) -> dict[tuple[str, str, str], object]:
    """(dataset, population, method) -> the per-explanation evidence of that method's best run (the
    highest mean test AUC over its K), for every fine-tuned method that explains."""
    import tempfile

    import pandas as pd

    from reasoningrec.report.cells import labelled_cells
    from reasoningrec.report.explanations import example_methods
    from reasoningrec.tracking import get_client

    client = get_client(params)
    examples = {}
    for dataset, population in sorted({(r.dataset, r.population) for r in records}):
        cells = labelled_cells([r for r in records if (r.dataset, r.population) == (dataset, population)])
        for method in example_methods():
            candidates = [c for c in cells.values() if c.method == method and c.mean() is not None]
            if not candidates:
                continue
            best = max(candidates, key=lambda c: c.mean())
            for run in best.runs:
                try:
                    with tempfile.TemporaryDirectory(prefix="reasoningrec-report-") as tmp:
                        frame = pd.read_parquet(client.download_artifacts(run.run_id, EXPLANATIONS_ARTIFACT, tmp))
                except Exception:  # a run logged without explanations (older runs): try the next seed
                    continue
                if len(frame):
                    examples[(dataset, population, method)] = frame
                    break
    return examples
