"""The compare stage: test AUC against K for the runs of one dataset's plan, from their metrics.json.

No MLflow needed: the figure and table come from the files the plan wrote, so DVC can track them
(``dvc plots show``) beside each run's ROC and calibration curves.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from reasoningrec.report.cells import RunRecord, group_cells
from reasoningrec.summary import Summary

if TYPE_CHECKING:
    from reasoningrec.config import Params


class CompareCell(Summary):
    """One method and K: the mean test and valid AUC over its seeds (None: no run has it)."""

    test_auc: float | None
    valid_auc: float | None
    seeds: int


class CompareSummary(Summary):
    """``compare/compare.json``: the cells by ``<method>/k<K>``."""

    dataset: str
    runs: int
    cells: dict[str, CompareCell]


def run_compare(
    params: Params, dataset: str, out_dir: Path | None = None, runs: tuple[str, ...] = ()
) -> CompareSummary:
    """Write ``compare/auc_vs_k.png`` and ``compare/compare.json`` (mean test/valid AUC per method and K)."""
    from reasoningrec.experiment_summary import ExperimentSummary
    from reasoningrec.io import atomic_path
    from reasoningrec.report.plots import auc_vs_k_png

    work = Path(out_dir) if out_dir is not None else params.work_dir(dataset)
    records = []
    for name in runs:
        summary = ExperimentSummary.read(work / "runs" / name.removeprefix("experiment-") / "metrics.json")
        records.append(
            RunRecord(
                run_id=summary.run_id or name,
                dataset=dataset,
                method=summary.method,
                k_shots=str(summary.k_shots),
                seed=str(summary.seed),
                metrics={k: v for k, v in summary.metrics.items() if v is not None},
                params={},
                tags={},
            )
        )
    cells = group_cells(records)
    table = {
        f"{cell.method}/k{cell.k_shots}": CompareCell(
            test_auc=cell.mean("test_auc"), valid_auc=cell.mean("valid_auc"), seeds=len(cell.runs)
        )
        for cell in cells.values()
    }
    png = auc_vs_k_png(dataset, cells) or b""
    with atomic_path(work / "compare" / "auc_vs_k.png") as tmp:
        tmp.write_bytes(png)
    summary = CompareSummary(dataset=dataset, runs=len(records), cells=table)
    summary.write(work / "compare" / "compare.json")
    return summary
