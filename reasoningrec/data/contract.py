"""The interactions contract, enforced on every chunk a source reader yields (one rule per field).

- ``user_id`` / ``item_id``: strings. Surrounding whitespace is stripped (inner whitespace is
  part of the id) and counted in ``ingest.json`` (``ids_stripped``), with how many distinct ids
  merged with another as a result (``ids_merged``): ``" 196"`` and ``"196"`` are one user. A missing
  or empty id is an error.
- ``rating``: a finite number within ``validate.rating_min .. rating_max``.
- ``timestamp``: integer Unix seconds, at least 0.
- ``review``: text or null.

Checks are vectorised over dictionary-encoded ids (the work is per distinct id, not per row) and
numpy arrays; the first offending record is located in its file only when there is one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from reasoningrec.data.readers import check_range
from reasoningrec.data.sources import Chunk
from reasoningrec.errors import DataError

ID_COLUMNS = ("user_id", "item_id")
# What interactions.parquet holds (docs/architecture.md); ids are dictionary-encoded in memory.
INTERACTIONS_SCHEMA = pa.schema(
    [
        ("user_id", pa.string()),
        ("item_id", pa.string()),
        ("rating", pa.float64()),
        ("timestamp", pa.int64()),
        ("review", pa.string()),
    ]
)
WRITE_SCHEMA = pa.schema(
    [
        ("user_id", pa.dictionary(pa.int32(), pa.string())),
        ("item_id", pa.dictionary(pa.int32(), pa.string())),
        ("rating", pa.float64()),
        ("timestamp", pa.int64()),
        ("review", pa.string()),
    ]
)


def as_dictionary(values) -> pa.DictionaryArray:
    """One dictionary array (int32 indices) from string, dictionary or chunked input."""
    if isinstance(values, pa.ChunkedArray):
        if not pa.types.is_dictionary(values.type):
            values = pc.dictionary_encode(values)  # chunk by chunk: cheaper than concatenating strings
        if values.num_chunks > 1:
            values = pa.Table.from_arrays([values], ["v"]).unify_dictionaries().column(0)
        values = values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    if not pa.types.is_dictionary(values.type):
        values = pc.dictionary_encode(values)
    if values.type.index_type != pa.int32():
        values = values.cast(pa.dictionary(pa.int32(), values.type.value_type))
    if values.type.value_type != pa.string():
        values = pa.DictionaryArray.from_arrays(values.indices, values.dictionary.cast(pa.string()))
    return values


@dataclass
class IdFix:
    """What the whitespace rule did to one id column of one chunk."""

    array: pa.DictionaryArray  # clean ids
    stripped_rows: int
    used: pa.Array  # distinct clean ids the chunk uses
    raw_used: pa.Array  # the same before stripping


def clean_ids(chunk: Chunk, column: str) -> IdFix:
    """Strip surrounding whitespace from the ids of ``column``; a null or empty id is a DataError."""
    array = as_dictionary(chunk.table.column(column))
    field_name = chunk.fields.get(column, column)
    if array.null_count:
        i = int(np.flatnonzero(array.is_null().to_numpy(zero_copy_only=False))[0])
        raise DataError(chunk.path, "required field is missing (empty id)", field=field_name, **chunk.where(i))
    values = array.dictionary
    indices = array.indices.to_numpy(zero_copy_only=False)
    counts = np.bincount(indices, minlength=len(values))
    in_use = counts > 0
    stripped = pc.utf8_trim_whitespace(values)
    empty = pc.equal(stripped, "").to_numpy(zero_copy_only=False) & in_use
    if empty.any():
        i = int(np.flatnonzero(empty[indices])[0])
        raise DataError(chunk.path, "empty id", field=field_name, **chunk.where(i))
    changed = pc.not_equal(stripped, values).to_numpy(zero_copy_only=False) & in_use
    used = values.filter(pa.array(in_use)) if not in_use.all() else values
    if not changed.any():
        return IdFix(array, 0, used, used)
    codes, uniques = pd.factorize(np.asarray(stripped.to_numpy(zero_copy_only=False), dtype=object))
    remapped = codes.astype(np.int32)[indices]
    fixed = pa.DictionaryArray.from_arrays(pa.array(remapped, pa.int32()), pa.array(uniques, pa.string()))
    clean_used = pc.unique(stripped.filter(pa.array(in_use)))
    return IdFix(fixed, int(counts[changed].sum()), clean_used, used)


def check_chunk(chunk: Chunk, rating_min: float, rating_max: float) -> tuple[pa.Table, dict[str, IdFix]]:
    """The chunk's table with clean ids, after every contract check (the first failure raises)."""
    table = chunk.table
    fixes = {column: clean_ids(chunk, column) for column in ID_COLUMNS}
    for column, low, high in (("rating", rating_min, rating_max), ("timestamp", 0, None)):
        values = table.column(column)
        if values.null_count:
            i = int(np.flatnonzero(values.is_null().to_numpy())[0])
            raise DataError(
                chunk.path, "required field is missing", field=chunk.fields.get(column, column), **chunk.where(i)
            )
        check_range(chunk.path, values.to_numpy(), chunk.where, chunk.fields.get(column, column), low, high)
    review = table.column("review") if "review" in table.column_names else pa.nulls(len(table), pa.string())
    out = pa.table(
        {
            "user_id": fixes["user_id"].array,
            "item_id": fixes["item_id"].array,
            "rating": table.column("rating").cast(pa.float64()),
            "timestamp": table.column("timestamp").cast(pa.int64()),
            "review": review.cast(pa.string()),
        },
        schema=WRITE_SCHEMA,
    )
    return out, fixes


@dataclass
class Totals:
    """Counts over every chunk of a source (the ``ingest.json`` figures)."""

    rows: int = 0
    reviews: int = 0
    time_min: int | None = None
    time_max: int | None = None
    ratings: dict[float, int] = field(default_factory=dict)
    stripped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ID_COLUMNS, 0))
    _ids: dict[str, list[pa.Array]] = field(default_factory=lambda: {c: [] for c in ID_COLUMNS})
    _raw_ids: dict[str, list[pa.Array]] = field(default_factory=lambda: {c: [] for c in ID_COLUMNS})

    def add(self, table: pa.Table, fixes: dict[str, IdFix]) -> None:
        self.rows += len(table)
        self.reviews += len(table) - table.column("review").null_count
        low, high = pc.min_max(table.column("timestamp")).values()
        if low.is_valid:
            self.time_min = low.as_py() if self.time_min is None else min(self.time_min, low.as_py())
            self.time_max = high.as_py() if self.time_max is None else max(self.time_max, high.as_py())
        counts = pc.value_counts(table.column("rating").combine_chunks())
        for value, count in zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True):
            self.ratings[value] = self.ratings.get(value, 0) + count
        for column, fix in fixes.items():
            self.stripped[column] += fix.stripped_rows
            self._ids[column].append(fix.used)
            self._raw_ids[column].append(fix.raw_used)

    def distinct(self, column: str) -> pa.Array:
        """Every distinct (clean) id of ``column`` seen so far."""
        parts = self._ids[column]
        return pc.unique(pa.chunked_array(parts, pa.string())) if parts else pa.array([], pa.string())

    def merged(self, column: str) -> int:
        """Distinct raw ids that became the same id as another once stripped."""
        if not self.stripped[column]:
            return 0
        raw = pc.unique(pa.chunked_array(self._raw_ids[column], pa.string()))
        return len(raw) - len(self.distinct(column))

    def histogram(self) -> dict[str, int]:
        return {f"{k:g}": int(self.ratings[k]) for k in sorted(self.ratings)}
