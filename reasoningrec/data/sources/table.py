"""A generic CSV/TSV (optionally gzipped) or Parquet ratings table; columns named by ``DatasetConfig.columns``.

CSV: the first non-blank line is the header; fields may be quoted (a quoted review may span
lines: messages then give the line its record starts on). Timestamps are Unix seconds or ISO-8601
dates (a date without a zone is UTC). Parquet: messages give the 0-based record.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from reasoningrec.data.readers import (
    ID_TYPE,
    arrow_csv,
    csv_field_count_error,
    csv_header,
    integer_ids,
    line_locator,
    nonempty_text,
    numeric_column,
    record_locator,
    require_file,
    unix_seconds,
)
from reasoningrec.data.schema import ITEM_COLUMNS, items_frame
from reasoningrec.data.sources import Chunk, ReadContext, SourceData
from reasoningrec.data.text import Text, read_text, require_final_newline
from reasoningrec.errors import DataError

REQUIRED = ("user", "item", "rating", "timestamp")
CONTRACT = {"user": "user_id", "item": "item_id", "rating": "rating", "timestamp": "timestamp", "review": "review"}
# kind -> the type pyarrow parses it to on the fast path (None: let pyarrow infer)
FAST_TYPES = {
    "id": ID_TYPE,
    "int_id": pa.int64(),
    "number": pa.float64(),
    "integer": pa.int64(),
    "time": None,
    "text": pa.string(),
}


def _convert(path: Path, column, kind: str, where, field: str):
    """One parsed column (fast-typed or strings) as the contract wants it, or a DataError."""
    if kind == "id":
        return column
    if kind == "int_id":
        return integer_ids(path, column, where, field)
    if kind in ("number", "integer"):
        return pa.array(numeric_column(path, column, where, field, integer=kind == "integer"))
    if kind == "time":
        return pa.array(unix_seconds(path, column, where, field), pa.int64())
    return nonempty_text(column)


def read_csv_columns(
    text: Text, wanted: dict[str, tuple[str, str]], delimiter: str, missing_hint, reopen=None
) -> tuple[dict[str, object], object, int]:
    """Columns of a header-led CSV: ``wanted`` maps a key to (the file's column name, kind).

    Returns {key: column}, the record locator and the row count. Fast path: pyarrow with the kinds'
    types; on any rejection, the columns again as strings with checks that name the line. The
    locator returned reads the file again through ``reopen`` (when given) rather than keeping it.
    """
    require_final_newline(text)
    header, header_line = csv_header(text, delimiter)
    for key, (name, _) in wanted.items():
        if name not in header:
            raise DataError(
                text.path, f"missing column (columns: {header}); {missing_hint(key)}", line=header_line, field=name
            )
    names = [name for name, _ in wanted.values()]
    where = line_locator(text, header=True, quoted=True, delimiter=delimiter)

    def convert(table: pa.Table) -> dict[str, object]:
        if table.num_rows == 0:
            raise DataError(text.path, "file has a header but no data rows", line=header_line)
        return {key: _convert(text.path, table.column(name), kind, where, name) for key, (name, kind) in wanted.items()}

    fast = {name: FAST_TYPES[kind] for name, kind in wanted.values() if FAST_TYPES[kind] is not None}
    later = where if reopen is None else lambda i: line_locator(reopen(), True, True, delimiter)(i)
    try:
        table = arrow_csv(text, delimiter=delimiter, names=None, types=fast, include=names, quoted=True)
        return convert(table), later, table.num_rows
    except (pa.ArrowInvalid, DataError):
        pass  # the precise path below says what and where
    try:
        table = arrow_csv(
            text, delimiter=delimiter, names=None, types=dict.fromkeys(names, pa.string()), include=names, quoted=True
        )
    except pa.ArrowInvalid as exc:
        error = csv_field_count_error(text, delimiter, len(header), header=True)
        raise error or DataError(text.path, f"not a readable CSV file ({str(exc).splitlines()[0]})") from None
    return convert(table), later, table.num_rows


def _parquet_columns(path: Path, wanted: dict[str, tuple[str, str]], missing_hint) -> tuple[dict, int]:
    import pyarrow.parquet as pq

    try:
        handle = pq.ParquetFile(path)
        names = handle.schema_arrow.names
    except (pa.ArrowException, OSError) as exc:
        raise DataError(path, f"not a readable Parquet file ({str(exc).strip().splitlines()[0]})") from None
    for key, (name, _) in wanted.items():
        if name not in names:
            raise DataError(path, f"missing column (columns: {names}); {missing_hint(key)}", field=name)
    try:
        table = handle.read(columns=[name for name, _ in wanted.values()])
    except (pa.ArrowException, OSError) as exc:
        raise DataError(path, f"not a readable Parquet file ({str(exc).strip().splitlines()[0]})") from None
    if table.num_rows == 0:
        raise DataError(path, "file has no data rows")
    out = {}
    for key, (name, kind) in wanted.items():
        column = table.column(name)
        if kind == "id":
            column = _parquet_ids(path, column, name)
        out[key] = _convert(path, column, kind, record_locator, name)
    return out, table.num_rows


def _parquet_ids(path: Path, column: pa.ChunkedArray, field: str):
    """Ids from a Parquet column: strings as they are, integers (or integral floats) in decimal."""
    kind = column.type.value_type if pa.types.is_dictionary(column.type) else column.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return column
    if pa.types.is_integer(kind):
        return pc.cast(column, pa.string())
    if pa.types.is_floating(kind):
        return integer_ids(path, column, record_locator, field)
    raise DataError(path, f"ids must be strings or integers, found {kind}", field=field)


def _load_meta(path: Path, context: ReadContext) -> pd.DataFrame:
    """An item table (CSV or Parquet) read whole with string columns."""
    require_file(path)
    if path.name.lower().endswith(".parquet"):
        try:
            return pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several types for damaged files
            raise DataError(path, f"not a readable Parquet file ({str(exc).strip().splitlines()[0]})") from None
    import io

    text = read_text(path, context.encoding, context.setting("encoding"))
    sep = "\t" if ".tsv" in path.name.lower() else ","
    csv_header(text, sep)
    try:
        return pd.read_csv(io.BytesIO(text.data), sep=sep, dtype=str, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, ValueError) as exc:
        raise DataError(path, f"not a readable CSV file ({exc})") from None


def read_table(path: Path, context: ReadContext) -> SourceData:
    config = context.config
    names = {key: config.columns.get(key, key) for key in (*REQUIRED, "review")}
    kinds = {"user": "id", "item": "id", "rating": "number", "timestamp": "time", "review": "text"}

    def hint(key: str) -> str:
        return f"set {context.setting(f'columns.{key}')} to the column that holds the {key}"

    require_file(path)
    wanted = {key: (names[key], kinds[key]) for key in REQUIRED}
    facts = {}
    if path.name.lower().endswith(".parquet"):
        review = _parquet_has(path, names["review"])
        if review:
            wanted["review"] = (names["review"], "text")
        columns, rows = _parquet_columns(path, wanted, hint)
        where = record_locator
    else:
        text = read_text(path, context.encoding, context.setting("encoding"))
        facts[str(path)] = text.facts()
        sep = "\t" if ".tsv" in path.name.lower() else ","
        header, _ = csv_header(text, sep)
        if names["review"] in header:
            wanted["review"] = (names["review"], "text")
        columns, where, rows = read_csv_columns(
            text, wanted, sep, hint, lambda: read_text(path, context.encoding, context.setting("encoding"))
        )
        del text
    table = pa.table({CONTRACT[key]: value for key, value in columns.items()})
    if "review" not in table.column_names:
        table = table.append_column("review", pa.nulls(rows, pa.string()))
    chunk = Chunk(table, path, where, {CONTRACT[key]: name for key, (name, _) in wanted.items()})
    files, items = [path], items_frame(pd.DataFrame({"item_id": []}))
    if config.meta_path:
        meta_path = context.params.data_dir / config.meta_path
        meta = _load_meta(meta_path, context)
        item_col = config.columns.get("item_id", config.columns.get("item", "item_id"))
        if item_col not in meta.columns:
            raise DataError(meta_path, f"missing item id column (columns: {list(meta.columns)})", field=item_col)
        meta = meta.rename(columns={item_col: "item_id"})
        items = items_frame(meta[[c for c in ITEM_COLUMNS if c in meta.columns]])
        files.append(meta_path)
    return SourceData(
        [chunk],
        items,
        files,
        text_facts=facts,
        missing_items_note="{n} items have no metadata: their id stands in for the title",
    )


def _parquet_has(path: Path, column: str) -> bool:
    import pyarrow.parquet as pq

    try:
        return column in pq.ParquetFile(path).schema_arrow.names
    except (pa.ArrowException, OSError) as exc:
        raise DataError(path, f"not a readable Parquet file ({str(exc).strip().splitlines()[0]})") from None
