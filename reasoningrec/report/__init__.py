"""The results report: every MLflow run of the contract, as the paper's tables, plots and provenance.

``run_report`` reads the runs (tags ``dataset``, ``method``, ``k_shots``, ``seed``), groups them into
cells (dataset x method x K), and writes ``docs/results.md`` plus a self-contained
``docs/results.html`` (plots embedded as base64 PNG). Each learned method is judged against the best
no-model heuristic of its dataset, not against 0.5. A difference is within noise when the paired
bootstrap 95% interval of the AUC difference on the test users both cells scored contains 0
(:func:`~reasoningrec.report.noise.within_noise`); runs without a predictions artifact fall back to
overlapping per-run intervals or |difference| < 2 x the larger seed std.

Modules: :mod:`~.cells` (runs -> cells), :mod:`~.noise` (statistics), :mod:`~.document` (blocks),
:mod:`~.plots`, :mod:`~.render` (Markdown/HTML), :mod:`~.collect` (MLflow).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reasoningrec.config import Params


def run_report(params: Params, out: str | Path = Path("docs/results.md"), n_bootstrap: int = 1000) -> Path:
    """Write ``out`` (Markdown), the same report as HTML beside it, and one PNG per dataset; return ``out``."""
    from reasoningrec.io import atomic_open, atomic_path
    from reasoningrec.report.collect import collect_examples, collect_runs
    from reasoningrec.report.document import build_blocks
    from reasoningrec.report.render import render_html, render_markdown

    out = Path(out)
    records, source = collect_runs(params, n_bootstrap)
    blocks = build_blocks(records, source, collect_examples(params, records))
    for block in blocks:
        if block.kind == "image":
            with atomic_path(out.parent / block.file) as tmp:
                tmp.write_bytes(block.png)
    with atomic_open(out) as handle:
        handle.write(render_markdown(blocks))
    with atomic_open(out.with_suffix(".html")) as handle:
        handle.write(render_html(blocks))
    return out
