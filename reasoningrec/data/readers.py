"""Low-level readers shared by the sources: typed delimited columns, JSON lines, numbers with errors.

Each reader parses twice at most. The fast path hands the whole file to pyarrow with the column
types the source declares. Only when pyarrow rejects something does the precise path run: it
re-reads the columns as strings and converts them with checks that stop at the first bad value,
or scans the lines for the one with the wrong number of fields, so every failure still becomes a
:class:`DataError` that names the file, the line (see its docstring for the numbering) and the field.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from reasoningrec.data.text import Text, csv_record_line, nonblank_line_numbers
from reasoningrec.errors import DataError

# record index (0-based, in the parsed table) -> where it is in the file: {"line": n} or {"record": n}
Where = Callable[[int], dict]

ID_TYPE = pa.dictionary(pa.int32(), pa.string())


def require_file(path: Path, what: str = "file") -> Path:
    if not path.is_file():
        raise DataError(path, f"{what} not found")
    return path


def line_locator(text: Text, header: bool = False, quoted: bool = False, delimiter: str = ",") -> Where:
    """Where record ``i`` of a parsed line-based file starts; computed only when an error needs it."""
    if quoted:
        return lambda i: {"line": csv_record_line(text, i, header, delimiter)}

    def where(i: int) -> dict:
        lines = nonblank_line_numbers(text.data)
        index = i + (1 if header else 0)
        return {"line": int(lines[min(index, len(lines) - 1)])}

    return where


def record_locator(i: int) -> dict:
    return {"record": int(i)}


def _where(where, i: int) -> dict:
    if callable(where):
        return where(i)
    return {"line": int(where[i])}  # an array of line numbers


# ---------------------------------------------------------------------------------------------
# Delimited text


def numbered_lines(text: Text) -> tuple[list[str], np.ndarray]:
    """Non-blank lines of a decoded file (``\\r`` stripped) and their 1-based line numbers."""
    lines = text.data.decode("utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    stripped = [line.rstrip("\r") for line in lines]
    keep = [i for i, line in enumerate(stripped) if line.strip()]
    return [stripped[i] for i in keep], np.asarray(keep, dtype=np.int64) + 1


def split_fields(
    text: Text,
    sep: str,
    names: list[str],
    *,
    min_fields: int | None = None,
    header: bool = False,
) -> tuple[dict[str, pa.Array], np.ndarray]:
    """Split every line on ``sep`` into named string columns (vectorised with pyarrow).

    ``min_fields`` (default: all names) is the fewest fields a line may have; a line with fewer or more
    than ``len(names)`` fields is a DataError naming the line, which catches a wrong delimiter.
    """
    lines, numbers = numbered_lines(text)
    if header:
        lines, numbers = lines[1:], numbers[1:]
        if not lines:
            raise DataError(text.path, "file has a header but no data rows")
    parts = pc.split_pattern(pa.array(lines, type=pa.large_string()), sep)
    counts = pc.list_value_length(parts).to_numpy(zero_copy_only=False)
    low = len(names) if min_fields is None else min_fields
    bad = np.flatnonzero((counts < low) | (counts > len(names)))
    if len(bad):
        i = bad[0]
        raise DataError(
            text.path,
            f"expected {len(names)} fields separated by {sep!r}, found {counts[i]} in {shorten(lines[i])!r} "
            "(wrong delimiter or a damaged file?)",
            line=int(numbers[i]),
        )
    if low < len(names):  # pad short rows so every column exists
        parts = pa.array([p + [None] * (len(names) - len(p)) for p in parts.to_pylist()])
    columns = {name: pc.list_element(parts, i) for i, name in enumerate(names)}
    return columns, numbers


def shown(value) -> str:
    """A value as a message quotes it: strings in quotes, a missing value as ``null``."""
    if value is None or (isinstance(value, float) and value != value) or value is pd.NA:
        return "null"
    return repr(value.item() if isinstance(value, np.generic) else value)


def shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def arrow_csv(
    text: Text,
    *,
    delimiter: str,
    names: list[str] | None,
    types: dict[str, pa.DataType],
    include: list[str],
    quoted: bool,
) -> pa.Table:
    """pyarrow's multi-threaded parse of a decoded delimited file (``names`` None: a header row).

    Raises ``pa.ArrowInvalid`` on anything it cannot type: the caller's precise path takes over.
    """
    import pyarrow.csv as pacsv

    quotes = quoted and b'"' in text.data
    return pacsv.read_csv(
        pa.BufferReader(pa.py_buffer(text.data)),
        read_options=pacsv.ReadOptions(column_names=names, use_threads=True, block_size=16 << 20),
        parse_options=pacsv.ParseOptions(
            delimiter=delimiter, quote_char='"' if quoted else False, newlines_in_values=quotes, ignore_empty_lines=True
        ),
        convert_options=pacsv.ConvertOptions(
            column_types=types,
            include_columns=include,
            null_values=[],
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
            check_utf8=False,
        ),
    )


def csv_header(text: Text, delimiter: str) -> tuple[list[str], int]:
    """The column names of a header-led CSV and the header's line; duplicate names are a DataError."""
    import csv
    import io

    start, line = 0, 1
    while True:  # the header is the first line that is not blank
        end = text.data.find(b"\n", start)
        raw = text.data[start : end if end >= 0 else len(text.data)].decode("utf-8").rstrip("\r")
        if raw.strip() or end < 0:
            break
        start, line = end + 1, line + 1
    header = next(csv.reader(io.StringIO(raw), delimiter=delimiter), [])
    seen, repeated = set(), []
    for name in header:
        if name in seen and name not in repeated:
            repeated.append(name)
        seen.add(name)
    if repeated:
        raise DataError(
            text.path, f"duplicate column name(s) {repeated} in the header {header}: rename them", line=line
        )
    return header, line


def csv_field_count_error(text: Text, delimiter: str, expected: int, header: bool) -> DataError | None:
    """The first line whose record has a field count other than ``expected`` (a quoted-CSV-aware scan)."""
    import csv
    import io

    reader = csv.reader(io.StringIO(text.data.decode("utf-8"), newline=""), delimiter=delimiter, strict=True)
    previous, first = 0, header
    try:
        for fields in reader:
            start, previous = previous + 1, reader.line_num
            if not fields:
                continue
            if first:
                first = False
                continue
            if len(fields) != expected:
                shown = shorten(delimiter.join(fields))
                return DataError(
                    text.path,
                    f"expected {expected} fields separated by {delimiter!r}, found "
                    f"{len(fields)} in {shown!r} (a stray delimiter or quote, or a damaged "
                    "file?)",
                    line=start,
                )
    except csv.Error as exc:  # an unbalanced quote runs into the field size limit or the end of the file
        return DataError(text.path, f"not a readable CSV record ({exc}; an unbalanced quote?)", line=previous + 1)
    return None


# ---------------------------------------------------------------------------------------------
# Typed columns with errors that name the value


def numeric_column(
    path: Path,
    values,
    where,
    field: str,
    *,
    integer: bool = False,
    low: float | None = None,
    high: float | None = None,
) -> np.ndarray:
    """Parse a column as numbers; the first bad or out-of-range value is a DataError (where + field).

    ``where`` maps a value's index to its place in the file (a :data:`Where`, or an array of lines).
    """
    out = _fast_float(values)
    if out is None:
        series = pd.Series(values.to_numpy(zero_copy_only=False) if hasattr(values, "to_numpy") else values)
        parsed = pd.to_numeric(series.astype(object).map(_strip), errors="coerce")
        bad = np.flatnonzero(parsed.isna().to_numpy() | ~np.isfinite(parsed.to_numpy(dtype=float, na_value=np.nan)))
        kind = "an integer" if integer else "a number"
        i = int(bad[0]) if len(bad) else 0
        raise DataError(path, f"expected {kind}, found {shown(series.iloc[i])}", field=field, **_where(where, i))
    if integer:
        fractional = np.flatnonzero(np.mod(out, 1) != 0)
        if len(fractional):
            i = int(fractional[0])
            raise DataError(path, f"expected an integer, found {out[i]!r}", field=field, **_where(where, i))
    check_range(path, out, where, field, low, high)
    return out.astype("int64") if integer else out


def check_range(path: Path, values: np.ndarray, where, field: str, low: float | None, high: float | None) -> None:
    """The first value outside ``[low, high]`` (or not finite) is a DataError."""
    lo = -np.inf if low is None else low
    hi = np.inf if high is None else high
    with np.errstate(invalid="ignore"):
        outside = ~((values >= lo) & (values <= hi))
    if values.dtype.kind == "f":
        outside |= ~np.isfinite(values)
    bad = np.flatnonzero(outside)
    if len(bad):
        i = int(bad[0])
        raise DataError(
            path, f"value {values[i]:g} is outside the allowed range [{lo:g}, {hi:g}]", field=field, **_where(where, i)
        )


def as_numpy(values) -> np.ndarray | None:
    """The values of a numeric Arrow column without nulls as numpy (no copy for one chunk), else None."""
    if isinstance(values, pa.ChunkedArray):
        if values.null_count or not (pa.types.is_floating(values.type) or pa.types.is_integer(values.type)):
            return None
        values = values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    if isinstance(values, pa.Array):
        if values.null_count or not (pa.types.is_floating(values.type) or pa.types.is_integer(values.type)):
            return None
        return values.to_numpy()
    return None


def _fast_float(values) -> np.ndarray | None:
    """Vectorised float parse (pyarrow); ``None`` when any value is not a finite number."""
    direct = as_numpy(values)
    if direct is not None:
        out = direct.astype(np.float64, copy=False)
        return out if np.isfinite(out).all() else None
    try:
        array = values if isinstance(values, pa.Array | pa.ChunkedArray) else pa.array(np.asarray(values))
        if pa.types.is_dictionary(array.type):
            array = array.cast(array.type.value_type)
        if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
            array = pc.utf8_trim_whitespace(array)
        if array.null_count:
            return None
        out = pc.cast(array, pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError, ValueError):
        return None
    return None if not np.isfinite(out).all() else np.array(out, dtype="float64")


def _strip(value):
    return value.strip() if isinstance(value, str) else value


def integer_ids(path: Path, values, where, field: str) -> pa.Array:
    """Ids that the format declares integers, as their canonical decimal strings (``007`` -> ``7``)."""
    return pa.array(numeric_column(path, values, where, field, integer=True).astype(str), pa.string())


def unix_seconds(path: Path, values, where, field: str) -> np.ndarray:
    """Unix seconds from integers, integral floats, dates/times, or ISO-8601 strings (naive = UTC)."""
    direct = as_numpy(values)
    if direct is not None and direct.dtype.kind in "iu":
        return direct.astype(np.int64, copy=False)
    array = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    kind = array.type
    if pa.types.is_floating(kind) or pa.types.is_integer(kind):
        return numeric_column(path, array, where, field, integer=True)
    if pa.types.is_timestamp(kind) and not array.null_count:
        per_second = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}[kind.unit]
        return np.floor_divide(array.cast(pa.int64()).to_numpy(), per_second)
    if pa.types.is_date(kind) and not array.null_count:
        return array.cast(pa.date32()).cast(pa.int32()).to_numpy().astype("int64") * 86_400
    if pa.types.is_dictionary(kind):
        array = array.cast(kind.value_type)
    series = pd.Series(array.to_numpy(zero_copy_only=False), dtype=object).map(_strip)
    numeric = pd.to_numeric(series, errors="coerce")
    if numeric.notna().all():
        return numeric_column(path, series.to_numpy(), where, field, integer=True)
    parsed = pd.to_datetime(series.where(numeric.isna()), errors="coerce", utc=True, format="ISO8601")
    bad = numeric.isna() & parsed.isna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            path,
            f"expected Unix seconds or an ISO-8601 date, found {shown(series.iloc[i])}",
            field=field,
            **_where(where, i),
        )
    seconds = (parsed - pd.Timestamp("1970-01-01", tz="UTC")) // pd.Timedelta(seconds=1)
    integral = numeric_column(path, numeric.fillna(0).to_numpy(), where, field, integer=True)
    return np.where(numeric.isna().to_numpy(), seconds.fillna(0).to_numpy(dtype="int64"), integral)


def nonempty_text(values) -> pa.Array:
    """A text column with empty or blank strings as nulls."""
    array = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    if pa.types.is_dictionary(array.type):
        array = array.cast(array.type.value_type)
    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        array = pc.cast(array, pa.string())
    blank = pc.equal(pc.utf8_trim_whitespace(array), "")
    return pc.if_else(pc.fill_null(blank, True), pa.scalar(None, array.type), array).cast(pa.string())


# ---------------------------------------------------------------------------------------------
# JSON


def json_lines(text: Text | bytes, path: Path | None = None, first_line: int = 1) -> Iterator[tuple[int, dict]]:
    """Yield (1-based line, object) for each non-blank line of JSON-lines text (the precise path)."""
    data = text.data if isinstance(text, Text) else text
    path = text.path if isinstance(text, Text) else path
    lines = data.split(b"\n")
    for number, line in enumerate(lines, start=first_line):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            cut = number == first_line + len(lines) - 1 and not data.endswith(b"\n")
            hint = "; it is the last line and has no line ending, so the file looks cut short" if cut else ""
            raise DataError(path, f"not valid JSON ({exc.msg}){hint}", line=number) from None
        if not isinstance(obj, dict):
            raise DataError(path, "expected one JSON object per line", line=number)
        yield number, obj


def required(path: Path, obj: dict, number: int, *fields: str):
    """The first present, non-null value among ``fields``, else a DataError naming the field."""
    for name in fields:
        value = obj.get(name)
        if value is not None and value != "":
            return value
    raise DataError(path, "required field is missing", line=number, field=" or ".join(fields))


def rating_range(params) -> tuple[float, float]:
    """Ratings accepted at ingest: the validate section's bounds (one definition of valid)."""
    return float(params.validate_.rating_min), float(params.validate_.rating_max)
