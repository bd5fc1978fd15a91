"""Readable validation reports: Great Expectations results -> JSON-able summaries -> plain text.

Pure functions only. :mod:`reasoningrec.validation` runs the suites and writes the files; this
module turns one suite's ``ExpectationSuiteValidationResult.to_json_dict()`` into a compact summary
(status, unexpected counts, a few offending rows with their values) and renders the text that
``ValidationFailed`` carries and the CLI prints.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from reasoningrec.validation_summary import ValidationSummary

EXAMPLE_ROWS = 5
# Keys of an expectation's kwargs that say *where* it looks, not *what* it expects.
_LOCATION_KEYS = {"batch_id", "column", "column_list", "column_A", "column_B", "row_condition", "condition_parser"}


def matches(condition: dict | None, flags: dict) -> bool:
    """Whether every key of ``condition`` (an expectation's ``meta`` rule) equals the run's flag."""
    return bool(condition) and all(flags.get(key) == value for key, value in condition.items())


def plain(value: Any) -> Any:
    """A JSON-able Python value: numpy scalars/arrays unwrapped, missing values as ``None``."""
    if isinstance(value, np.ndarray | list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def expectation_columns(kwargs: dict) -> list[str]:
    """The columns an expectation reads, in the order its kwargs name them."""
    if "column" in kwargs:
        return [kwargs["column"]]
    if "column_list" in kwargs:
        return list(kwargs["column_list"])
    return [kwargs[key] for key in ("column_A", "column_B") if key in kwargs]


def row_condition(kwargs: dict) -> str | None:
    """The pandas row filter of a conditional expectation, as text."""
    condition = kwargs.get("row_condition")
    if isinstance(condition, dict):
        return condition.get("pass_through_filter") or str(condition)
    return condition or None


def example_rows(
    frame: pd.DataFrame, index: list, columns: list[str], limit: int = EXAMPLE_ROWS, row_numbers: bool = True
) -> list[dict]:
    """The first ``limit`` offending rows of ``frame`` (by index label), restricted to ``columns``.

    ``row_numbers`` adds the row's position in its file (``record N``, 0-based, as ``DataError``
    numbers Parquet rows); off for derived tables (one row per user).
    """
    columns = [c for c in dict.fromkeys(columns) if c in frame.columns]
    rows = []
    for label in index[:limit]:
        if label not in frame.index:
            continue
        record = frame.loc[label, columns]
        head = {"record": plain(label)} if row_numbers else {}
        rows.append({**head, **{c: plain(record[c]) for c in columns}})
    return rows


def summarize_expectation(entry: dict, frame: pd.DataFrame, suite_meta: dict, flags: dict) -> dict:
    """One expectation's outcome: status (passed/failed/warning/error), counts and offending rows."""
    config = entry["expectation_config"]
    kwargs, meta = config.get("kwargs", {}), config.get("meta") or {}
    result = entry.get("result") or {}
    exception = entry.get("exception_info") or {}
    columns = expectation_columns(kwargs)
    if exception.get("raised_exception"):
        status = "error"
    elif entry["success"]:
        status = "passed"
    else:
        status = "warning" if matches(meta.get("warn_if"), flags) else "failed"
    summary = {
        "expectation": config["type"],
        "description": config.get("description"),
        "columns": columns,
        "condition": row_condition(kwargs),
        "parameters": plain({k: v for k, v in kwargs.items() if k not in _LOCATION_KEYS}),
        "status": status,
        "element_count": plain(result.get("element_count")),
        "unexpected_count": plain(result.get("unexpected_count")),
        "unexpected_percent": plain(result.get("unexpected_percent")),
        "missing_count": plain(result.get("missing_count")),
        "observed_value": plain(result.get("observed_value")),
    }
    if status == "error":
        summary["error"] = exception.get("exception_message")
    if status == "warning":
        summary["warning"] = meta.get("warn_reason")
    if status in ("failed", "warning"):
        index = result.get("partial_unexpected_index_list") or []
        shown = [*suite_meta.get("id_columns", []), *columns, *meta.get("show", [])]
        summary["examples"] = (
            example_rows(frame, index, shown, row_numbers=suite_meta.get("row_numbers", True))
            if index
            else [{"value": plain(v)} for v in (result.get("partial_unexpected_list") or [])[:EXAMPLE_ROWS]]
        )
    return summary


def whole_table_counts(summary: dict, rows: int) -> dict:
    """An expectation's counts when GX saw screened + sampled rows: every offending (and every
    missing) row was among them, so the counts stand and only the element count is the table's."""
    if summary["unexpected_count"] is None:
        return summary
    missing = summary["missing_count"] or 0
    percent = 100.0 * summary["unexpected_count"] / max(rows - missing, 1)
    return {**summary, "element_count": rows, "unexpected_percent": percent}


def summarize_suite(
    suite: str,
    source: str,
    frame: pd.DataFrame,
    result: dict,
    skipped: list[dict],
    flags: dict,
    suite_meta: dict,
    scope: dict | None = None,
) -> dict:
    """A suite's outcome from ``result`` (a validation result's ``to_json_dict()``).

    ``suite_meta`` (the suite JSON's ``meta``) names the ``id_columns`` shown with each offending row;
    ``scope`` says which rows GX checked (:func:`reasoningrec.validation_screen.gx_rows`).
    """
    scope = scope or {"rows": len(frame), "gx_rows": len(frame), "mode": "all rows"}
    expectations = [summarize_expectation(e, frame, suite_meta, flags) for e in result["results"]]
    if scope["mode"] != "all rows":
        expectations = [whole_table_counts(e, scope["rows"]) for e in expectations]
    counts = {s: sum(e["status"] == s for e in expectations) for s in ("passed", "failed", "warning", "error")}
    counts["skipped"] = len(skipped)
    return {
        "suite": suite,
        "source": source,
        "rows": len(frame),
        "scope": scope,
        "success": counts["failed"] == 0 and counts["error"] == 0,
        "counts": counts,
        "expectations": expectations,
        "skipped": skipped,
    }


def _where(e: dict) -> str:
    columns = e["columns"]
    text = f"column {columns[0]!r}" if len(columns) == 1 else f"columns {', '.join(columns)}" if columns else "table"
    if e["condition"]:
        text += f" where {e['condition']}"
    params = ", ".join(f"{k}={v}" for k, v in e["parameters"].items() if v is not None)
    return f"{text} ({params})" if params else text


def _how_many(e: dict) -> str:
    if e["status"] == "error":
        return f"could not run: {e.get('error')}"
    if e["unexpected_count"] is None:
        return f"observed {e['observed_value']}"
    total = e["element_count"] or 0
    pct = f" ({e['unexpected_percent']:.3g}%)" if e["unexpected_percent"] is not None else ""
    return f"{e['unexpected_count']:,} of {total:,} rows{pct}"


def _example_line(row: dict) -> str:
    head = f"record {row.pop('record')}: " if "record" in row else ""
    return head + ", ".join(f"{k}={_short(v)}" for k, v in row.items())


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def format_report(summary: ValidationSummary, only_problems: bool = True) -> str:
    """Plain-text report of a stage: each failed/warned expectation, its rows, and where the files are."""
    failed = sum(s["counts"]["failed"] + s["counts"]["error"] for s in summary.suites)
    total = sum(len(s["expectations"]) for s in summary.suites)
    verdict = "passed" if summary.success else f"FAILED ({failed} of {total} expectations)"
    lines = [f"validation {verdict}: dataset {summary.dataset!r}, stage {summary.stage!r}"]
    for suite in summary.suites:
        state = "ok" if suite["success"] else "FAILED"
        scope = suite.get("scope") or {}
        checked = (
            f"; GX checked {scope['screened_rows']:,} screened + {scope['sampled_rows']:,} sampled rows"
            if scope.get("mode") == "screened + sample"
            else ""
        )
        lines.append(f"[{suite['suite']}] {state}: {suite['source']} ({suite['rows']:,} rows{checked})")
        for e in suite["expectations"]:
            if only_problems and e["status"] == "passed":
                continue
            lines.append(f"  {e['status'].upper()} {e['expectation']} on {_where(e)}: {_how_many(e)}")
            if e.get("description"):
                lines.append(f"      expected: {e['description']}")
            if e.get("warning"):
                lines.append(f"      not fatal: {e['warning']}")
            lines.extend(f"      {_example_line(dict(row))}" for row in e.get("examples", []))
        for s in suite["skipped"]:
            lines.append(f"  SKIPPED {s['expectation']} on {', '.join(s['columns']) or 'table'}: {s['reason']}")
    lines.extend(f"note: {note}" for note in summary.notes)
    lines.append(f"full results: {summary.results_path}")
    if summary.data_docs:
        lines.append(f"data docs: {summary.data_docs}")
    return "\n".join(lines)


def format_summary(summary: ValidationSummary) -> str:
    """One line per suite for a passing run (the CLI's success output)."""
    parts = []
    for s in summary.suites:
        c = s["counts"]
        extra = ", ".join(f"{c[k]} {k}" for k in ("warning", "skipped") if c[k])
        parts.append(f"{s['suite']} {c['passed']}/{len(s['expectations'])} passed" + (f" ({extra})" if extra else ""))
    return f"validate {summary.dataset} {summary.stage}: " + "; ".join(parts) + f" -> {summary.results_path}"
