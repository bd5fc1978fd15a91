"""Errors a user can act on. The CLI prints them without a traceback and exits non-zero."""

from __future__ import annotations


class ReasoningRecError(Exception):
    """Base class: the message alone tells the user what went wrong and where."""


class ConfigError(ReasoningRecError):
    """Invalid or missing settings."""


class DataError(ReasoningRecError):
    """Bad input data: names the file, where in it, the field, and what was expected.

    Where in the file follows one convention across the data stages:

    - ``line=N``: the 1-based line of a text file (CSV, TSV, ``::``-separated, JSON lines) on which the
      record starts, as an editor shows it: blank lines and the lines inside a quoted multi-line field
      count, a gzipped file counts the lines of its decompressed text.
    - ``record=N``: the 0-based position of a record in a file that has no lines (a Parquet row, an
      element of a JSON list or object), the index ``pandas.DataFrame.iloc[N]`` would use.
    - ``row=N``: kept for callers outside the data stages that number rows their own way.
    """

    def __init__(
        self,
        path,
        problem: str,
        *,
        line: int | None = None,
        record: int | None = None,
        row: int | None = None,
        field: str | None = None,
    ):
        self.path, self.problem, self.field = str(path), problem, field
        self.line, self.record, self.row = line, record, row
        where = self.path
        if line is not None:
            where += f", line {line}"
        if record is not None:
            where += f", record {record}"
        if row is not None:
            where += f", row {row}"
        if field is not None:
            where += f", field {field!r}"
        super().__init__(f"{where}: {problem}")


class ValidationFailed(ReasoningRecError):
    """A Great Expectations suite failed; the message is the readable report."""


class MissingDependency(ReasoningRecError):
    """An optional package is needed; the message holds the install command."""
