"""Errors a user can act on. The CLI prints them without a traceback and exits non-zero."""

from __future__ import annotations


class ReasoningRecError(Exception):
    """Base class: the message alone tells the user what went wrong and where."""


class ConfigError(ReasoningRecError):
    """Invalid or missing settings."""


class DataError(ReasoningRecError):
    """Bad input data: names the file, the row or field, and what was expected."""

    def __init__(self, path, problem: str, *, row: int | None = None, field: str | None = None):
        self.path, self.row, self.field, self.problem = str(path), row, field, problem
        where = self.path
        if row is not None:
            where += f", row {row}"
        if field is not None:
            where += f", field {field!r}"
        super().__init__(f"{where}: {problem}")


class ValidationFailed(ReasoningRecError):
    """A Great Expectations suite failed; the message is the readable report."""


class MissingDependency(ReasoningRecError):
    """An optional package is needed; the message holds the install command."""
