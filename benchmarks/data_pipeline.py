"""Wall time and peak memory of ingest + validate + prepare on the full MovieLens-1M (1,000,209 ratings).

Target: <= 30 s wall and < 2 GB peak RSS on a 2-core CPU box. Validation runs when
``reasoningrec.validation.run_validation`` exists (it imports Great Expectations, so it is timed
separately). Outputs go to a temporary folder; the raw data comes from ``$REASONINGREC_DATA_DIR``.

Examples::

    REASONINGREC_DATA_DIR=../shared/data python -m benchmarks.data_pipeline
    REASONINGREC_DATA_DIR=../shared/data python -m benchmarks.data_pipeline --out docs/performance.md
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

from benchmarks.docs_section import write_section

HEADING = "## Data pipeline (ML-1M)"


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(dataset: str, params_path: str | None) -> list[tuple[str, float, str]]:
    from reasoningrec.config import load_params
    from reasoningrec.data.ingest import run_ingest
    from reasoningrec.data.prepare import run_prepare

    # Every user of the dataset, whatever slice params.yaml's main job takes (prepare.max_users).
    params = load_params(params_path, assignments=["prepare.max_users=null"])
    rows: list[tuple[str, float, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        start = time.perf_counter()
        s = run_ingest(params, dataset, out)
        rows.append(("ingest", time.perf_counter() - start, f"{s.rows:,} ratings, time: {s.time_source}"))
        try:
            from reasoningrec.validation import run_validation
        except ImportError:
            rows.append(("validate", 0.0, "skipped: reasoningrec.validation not available"))
        else:
            start = time.perf_counter()
            try:
                v = run_validation(params, dataset, "interactions", out)
                note = "passed" if v.success else "failed"
            except Exception as exc:  # a failing suite still costs its time; report it, keep going
                note = f"{type(exc).__name__}: {str(exc).splitlines()[0][:80]}"
            rows.append(("validate (interactions)", time.perf_counter() - start, note))
        start = time.perf_counter()
        p = run_prepare(params, dataset, out)
        rows.append(("prepare", time.perf_counter() - start, f"{p.users:,} users, {sum(p.samples.values()):,} samples"))
    return rows


def render(rows, total: float, rss: float, command: str) -> str:
    lines = [
        HEADING,
        "",
        f"Command: `{command}`  ",
        f"Machine: {os.cpu_count()}-core CPU dev box ({platform.processor() or platform.machine()}), "
        f"Python {platform.python_version()}, shared with other jobs (expect +-30 % run to run); "
        f"{datetime.date.today().isoformat()}. One cold process:",
        "imports count in the first stage that needs them (Great Expectations in validate).",
        "",
        "| stage | wall s | note |",
        "|---|---:|---|",
        *[f"| {name} | {secs:.2f} | {note} |" for name, secs, note in rows],
        f"| **total** | **{total:.2f}** | peak RSS **{rss:,.0f} MB** (target <= 30 s, < 2 GB) |",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml1m")
    parser.add_argument("--params", default=None)
    parser.add_argument("--out", type=Path, default=None, help="Markdown file to update (e.g. docs/performance.md)")
    args = parser.parse_args()
    start = time.perf_counter()
    rows = run(args.dataset, args.params)
    total, rss = time.perf_counter() - start, peak_rss_mb()
    command = "REASONINGREC_DATA_DIR=../shared/data python -m benchmarks.data_pipeline --out docs/performance.md"
    section = render(rows, total, rss, command)
    print(section)
    if args.out:
        write_section(args.out, HEADING, section)


if __name__ == "__main__":
    main()
