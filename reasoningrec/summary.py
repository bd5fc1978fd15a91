"""Typed stage summaries: what a stage entry point returns and writes beside its outputs as JSON.

Each stage defines its summary as a subclass of :class:`Summary` (fields typed, unknown keys
rejected), so callers read attributes instead of indexing dicts by string, and the JSON on disk is
validated when it is read back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, ValidationError

from reasoningrec.errors import DataError


class Summary(BaseModel):
    """Base of every stage summary: JSON out (:meth:`write`), validated JSON in (:meth:`read`)."""

    model_config = ConfigDict(extra="forbid")

    def to_json(self) -> dict[str, Any]:
        """The summary as JSON-ready data (what is written to disk)."""
        return self.model_dump(mode="json")

    def write(self, path: str | Path) -> Path:
        """Write the summary atomically to ``path``."""
        from reasoningrec.io import write_json

        return write_json(path, self.to_json())

    @classmethod
    def read(cls, path: str | Path) -> Self:
        """Read and validate a summary file; a bad one is a :class:`DataError` naming the field."""
        from reasoningrec.io import read_json

        path = Path(path)
        if not path.is_file():
            raise DataError(path, "file not found")
        try:
            data = read_json(path)
        except ValueError as exc:
            raise DataError(path, f"not valid JSON: {exc}") from None
        return cls.from_json(data, path)

    @classmethod
    def from_json(cls, data: Any, source: str | Path) -> Self:
        """Validate JSON data (e.g. a completion record's summary) read from ``source``; a bad one is
        a :class:`DataError` naming ``source`` and the field."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"])
            raise DataError(source, f"not a {cls.__name__}: {first['msg']}", field=field) from None
