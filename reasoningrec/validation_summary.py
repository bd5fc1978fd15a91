"""What a validation stage writes: ``validation/validate_<stage>.json`` (read back by the CLI and the
reports of :mod:`reasoningrec.validation_report`)."""

from __future__ import annotations

from typing import Any

from reasoningrec.summary import Summary


class ValidationSummary(Summary):
    """``validation/validate_<stage>.json``: the verdict, the flags and parameters the suites ran
    with, one report per suite (:func:`~reasoningrec.validation_report.summarize_suite`), the Data Docs."""

    dataset: str
    stage: str
    success: bool
    flags: dict[str, str | bool]
    parameters: dict[str, int | float]
    suites: list[dict[str, Any]]
    notes: list[str]
    results_path: str
    data_docs: str | None
    data_docs_run: str | None
    seconds: float
