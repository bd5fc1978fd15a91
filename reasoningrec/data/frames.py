"""Reading the stages' Parquet files: clear errors for missing or damaged files, ids as integer codes.

``interactions.parquet`` keeps string ids on disk (the contract); in memory the later stages work on
int32 codes into the distinct ids (read straight from Parquet's dictionary pages), so sorting,
counting and joining touch 4 bytes per id instead of a Python string.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from reasoningrec.errors import DataError

INTERACTION_COLUMNS = ["user_id", "item_id", "rating", "timestamp"]


def parquet_file(path: Path, hint: str):
    """An open ``pq.ParquetFile``; a missing file names the fix, a damaged one says so (no traceback).

    ``hint`` is the command that makes the file (``run `reasoningrec ingest -d x```).
    """
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise DataError(path, f"not found: {hint} first")
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise _damaged(path, exc, hint) from None


def _damaged(path: Path, exc: Exception, hint: str) -> DataError:
    return DataError(
        path,
        f"not a readable Parquet file ({_first_line(exc)}); it may have been cut short by an "
        f"interrupted write or copy: {hint} again",
    )


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def read_table(
    path: Path, columns: list[str], hint: str, dictionary: tuple[str, ...] = (), optional: tuple[str, ...] = ()
) -> pa.Table:
    """``columns`` (and the ``optional`` ones present) of a stage's Parquet file, checked.

    ``dictionary`` columns come back dictionary-encoded (from the file's own dictionary pages), one
    chunk per row group.
    """
    import pyarrow.parquet as pq

    handle = parquet_file(path, hint)
    names = handle.schema_arrow.names
    missing = [c for c in columns if c not in names]
    if missing:
        raise DataError(path, f"missing column(s) {missing}; expected {columns}", field=missing[0])
    wanted = [*columns, *(c for c in optional if c in names and c not in columns)]
    try:
        reader = pq.ParquetFile(path, read_dictionary=[c for c in dictionary if c in wanted]) if dictionary else handle
        return reader.read(columns=wanted)
    except (pa.ArrowException, OSError) as exc:
        raise _damaged(path, exc, hint) from None


def read_frame(path: Path, columns: Sequence[str], hint: str, *, required: bool = True) -> pd.DataFrame | None:
    """A stage's whole Parquet file as a DataFrame, checked to hold ``columns`` (None when it is
    absent and not ``required``); the same errors as :func:`read_table`."""
    path = Path(path)
    if not required and not path.is_file():
        return None
    handle = parquet_file(path, hint)
    missing = [c for c in columns if c not in handle.schema_arrow.names]
    if missing:
        raise DataError(path, f"missing column(s) {missing}; expected {list(columns)}", field=missing[0])
    try:
        return handle.read().to_pandas()
    except (pa.ArrowException, OSError) as exc:
        raise _damaged(path, exc, hint) from None


def codes_of(column) -> tuple[np.ndarray, pa.Array]:
    """int32 codes (-1 for null) and the distinct string values of an id column."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if isinstance(column, pa.ChunkedArray) and pa.types.is_dictionary(column.type) and column.num_chunks > 1:
        array = pa.chunked_array(column.chunks, column.type).unify_dictionaries().combine_chunks()
    if not pa.types.is_dictionary(array.type):
        if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
            array = pc.cast(array, pa.string())
        array = pc.dictionary_encode(array)
    values = array.dictionary.cast(pa.string())
    codes = array.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int32, copy=False)
    if len(values) != len(pc.unique(values)):  # never from pyarrow, but a hand-made file may repeat values
        codes_, uniques = pd.factorize(np.asarray(values.to_numpy(zero_copy_only=False), dtype=object))
        remap = codes_.astype(np.int32)
        codes = np.where(codes >= 0, remap[np.maximum(codes, 0)], -1).astype(np.int32)
        values = pa.array(uniques, pa.string())
    return codes, values


@dataclass
class Interactions:
    """``interactions.parquet`` as arrays, in file order."""

    path: Path
    users: np.ndarray  # int32 code per row, -1 = null
    user_ids: pa.Array  # code -> id
    items: np.ndarray
    item_ids: pa.Array
    rating: np.ndarray  # float64 (NaN = null)
    timestamp: np.ndarray  # int64
    timestamp_null: np.ndarray | None = None  # bool per row, when the file holds nulls

    def __len__(self) -> int:
        return len(self.rating)

    def subset(self, keep: np.ndarray) -> Interactions:
        """The rows where ``keep`` is true, in file order, with the same id dictionaries."""
        null = None if self.timestamp_null is None else self.timestamp_null[keep]
        return Interactions(
            self.path,
            self.users[keep],
            self.user_ids,
            self.items[keep],
            self.item_ids,
            self.rating[keep],
            self.timestamp[keep],
            null,
        )

    def frame(self) -> pd.DataFrame:
        """A pandas view: ids as categoricals over the distinct ids, nulls as NaN."""
        timestamp = (
            self.timestamp
            if self.timestamp_null is None
            else pd.array(np.where(self.timestamp_null, 0, self.timestamp), dtype="Int64").where(
                ~self.timestamp_null, pd.NA
            )
        )
        return pd.DataFrame(
            {
                "user_id": pd.Categorical.from_codes(self.users, categories=_categories(self.user_ids)),
                "item_id": pd.Categorical.from_codes(self.items, categories=_categories(self.item_ids)),
                "rating": self.rating,
                "timestamp": timestamp,
            }
        )


def _categories(values: pa.Array) -> pd.Index:
    return pd.Index(values.to_numpy(zero_copy_only=False), dtype=object)


def load_interactions(path: Path, hint: str) -> Interactions:
    """Read ``interactions.parquet`` (without the review column) into :class:`Interactions`."""
    table = read_table(path, INTERACTION_COLUMNS, hint, dictionary=("user_id", "item_id"))
    users, user_ids = codes_of(table.column("user_id"))
    items, item_ids = codes_of(table.column("item_id"))
    rating = table.column("rating")
    rating = (
        pc.cast(rating, pa.float64()).to_numpy()
        if rating.null_count == 0
        else pc.cast(rating, pa.float64()).to_pandas().to_numpy(dtype=float, na_value=np.nan)
    )
    stamps = table.column("timestamp")
    null = None
    if stamps.null_count:
        null = stamps.is_null().to_numpy()
        stamps = stamps.fill_null(0)
    try:
        timestamp = pc.cast(stamps, pa.int64()).to_numpy()
    except pa.ArrowInvalid as exc:
        raise DataError(path, f"timestamps must be integers ({_first_line(exc)})", field="timestamp") from None
    return Interactions(
        Path(path),
        users,
        user_ids,
        items,
        item_ids,
        np.asarray(rating, dtype=np.float64),
        np.asarray(timestamp, dtype=np.int64),
        null,
    )
