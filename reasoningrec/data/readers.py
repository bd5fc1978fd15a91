"""Low-level readers shared by the sources: byte loading, delimited splitting, typed columns.

Every failure becomes a :class:`DataError` naming the file, the 1-based line and/or the field.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from reasoningrec.errors import DataError


def require_file(path: Path, what: str = "file") -> Path:
    if not path.is_file():
        raise DataError(path, f"{what} not found")
    return path


def read_bytes(path: Path) -> bytes:
    """The file's bytes, transparently gunzipped; truncated or corrupt gzip is a DataError."""
    require_file(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as exc:
            raise DataError(path, f"gzip stream is truncated or corrupt ({exc}); download the file again") from None
    if not raw.strip():
        raise DataError(path, "file is empty")
    return raw


def numbered_lines(path: Path, encoding: str = "utf-8") -> tuple[list[str], np.ndarray]:
    """Non-blank lines of a text file and their 1-based line numbers."""
    raw = read_bytes(path)
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(path, f"not valid {encoding} text", row=line) from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    keep = [i for i, line in enumerate(lines) if line.strip()] if any(not x.strip() for x in lines) else None
    if keep is None:
        return [line.rstrip("\r") for line in lines], np.arange(1, len(lines) + 1)
    return [lines[i].rstrip("\r") for i in keep], np.asarray(keep) + 1


def split_fields(
    path: Path, sep: str, names: list[str], *, encoding: str = "utf-8", min_fields: int | None = None,
    header: bool = False,
) -> tuple[dict[str, pa.Array], np.ndarray]:
    """Split every line on ``sep`` into named string columns (vectorised with pyarrow).

    ``min_fields`` (default: all names) is the fewest fields a line may have; a line with fewer or more
    than ``len(names)`` fields is a DataError naming the line, which catches a wrong delimiter.
    """
    lines, numbers = numbered_lines(path, encoding)
    if header:
        lines, numbers = lines[1:], numbers[1:]
        if not lines:
            raise DataError(path, "file has a header but no data rows")
    parts = pc.split_pattern(pa.array(lines, type=pa.large_string()), sep)
    counts = pc.list_value_length(parts).to_numpy(zero_copy_only=False)
    low = len(names) if min_fields is None else min_fields
    bad = np.flatnonzero((counts < low) | (counts > len(names)))
    if len(bad):
        i = bad[0]
        shown = lines[i] if len(lines[i]) <= 80 else lines[i][:77] + "..."
        raise DataError(
            path,
            f"expected {len(names)} fields separated by {sep!r}, found {counts[i]} in {shown!r} "
            "(wrong delimiter or a damaged file?)",
            row=int(numbers[i]),
        )
    if low < len(names):  # pad short rows so every column exists
        parts = pa.array([p + [None] * (len(names) - len(p)) for p in parts.to_pylist()])
    columns = {name: pc.list_element(parts, i) for i, name in enumerate(names)}
    return columns, numbers


def numeric_column(
    path: Path, values, numbers: np.ndarray, field: str, *, integer: bool = False,
    low: float | None = None, high: float | None = None,
) -> np.ndarray:
    """Parse a column as numbers; the first bad or out-of-range value is a DataError (line + field)."""
    out = _fast_float(values)
    if out is None:
        series = pd.Series(values.to_numpy(zero_copy_only=False) if hasattr(values, "to_numpy") else values)
        parsed = pd.to_numeric(series.astype(object).map(_strip), errors="coerce")
        bad = np.flatnonzero(parsed.isna().to_numpy())
        kind = "an integer" if integer else "a number"
        i = int(bad[0]) if len(bad) else 0
        raise DataError(path, f"expected {kind}, found {series.iloc[i]!r}", row=int(numbers[i]), field=field)
    if integer:
        fractional = np.flatnonzero(np.mod(out, 1) != 0)
        if len(fractional):
            i = int(fractional[0])
            raise DataError(path, f"expected an integer, found {out[i]!r}", row=int(numbers[i]), field=field)
    lo = -np.inf if low is None else low
    hi = np.inf if high is None else high
    outside = np.flatnonzero((out < lo) | (out > hi))
    if len(outside):
        i = int(outside[0])
        raise DataError(path, f"value {out[i]:g} is outside the allowed range [{lo:g}, {hi:g}]",
                        row=int(numbers[i]), field=field)
    return out.astype("int64") if integer else out


def _fast_float(values) -> np.ndarray | None:
    """Vectorised float parse (pyarrow); ``None`` when any value is not a number."""
    try:
        array = values if isinstance(values, pa.Array | pa.ChunkedArray) else pa.array(np.asarray(values))
        if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
            array = pc.utf8_trim_whitespace(array)
        if array.null_count:
            return None
        out = pc.cast(array, pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError, ValueError):
        return None
    return None if np.isnan(out).any() else np.array(out, dtype="float64")


def _strip(value):
    return value.strip() if isinstance(value, str) else value


def json_lines(path: Path) -> Iterator[tuple[int, dict]]:
    """Yield (1-based line, object) for each non-blank line of a JSON-lines file (gzipped or not)."""
    raw = read_bytes(path)
    for number, line in enumerate(raw.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(path, f"not valid JSON ({exc.msg})", row=number) from None
        if not isinstance(obj, dict):
            raise DataError(path, "expected one JSON object per line", row=number)
        yield number, obj


def required(path: Path, obj: dict, number: int, *fields: str):
    """The first present, non-null value among ``fields``, else a DataError naming the field."""
    for name in fields:
        value = obj.get(name)
        if value is not None and value != "":
            return value
    raise DataError(path, "required field is missing", row=number, field=" or ".join(fields))


def rating_range(params) -> tuple[float, float]:
    """Ratings accepted at ingest: the validate section's bounds (one definition of valid)."""
    return float(params.validate_.rating_min), float(params.validate_.rating_max)
