"""A generic CSV or Parquet ratings table; column names come from ``DatasetConfig.columns``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from reasoningrec.data.readers import numeric_column, rating_range, read_bytes, require_file
from reasoningrec.data.schema import ITEM_COLUMNS, fill_missing_items, interactions_frame, items_frame
from reasoningrec.data.sources import SourceData
from reasoningrec.errors import ConfigError, DataError

REQUIRED = ("user", "item", "rating", "timestamp")


def read_table(path: Path, config, params) -> SourceData:
    names = {key: config.columns.get(key, key) for key in (*REQUIRED, "review")}
    frame = _load(path)
    for key in REQUIRED:
        if names[key] not in frame.columns:
            raise DataError(path, f"missing column (columns: {list(frame.columns)}); set datasets.<name>.columns.{key}",
                            field=names[key])
    # CSV line of each row: header is line 1.
    numbers = np.arange(2, len(frame) + 2) if path.suffix.lower() != ".parquet" else np.arange(1, len(frame) + 1)
    for key in ("user", "item"):
        blank = frame[names[key]].isna() | frame[names[key]].astype(str).str.strip().eq("")
        if blank.any():
            raise DataError(path, "empty id", row=int(numbers[np.flatnonzero(blank.to_numpy())[0]]), field=names[key])
    low, high = rating_range(params)
    rating = numeric_column(path, frame[names["rating"]].to_numpy(), numbers, names["rating"], low=low, high=high)
    timestamp = _timestamps(path, frame[names["timestamp"]], numbers, names["timestamp"])
    review = frame[names["review"]] if names["review"] in frame.columns else None
    if review is not None:
        review = review.astype(object).where(review.notna(), None)
    interactions = interactions_frame(frame[names["user"]].astype(str).str.strip(),
                                      frame[names["item"]].astype(str).str.strip(), rating, timestamp, review)
    files, notes = [path], []
    if config.meta_path:
        meta_path = params.data_dir / config.meta_path
        meta = _load(meta_path)
        item_col = config.columns.get("item_id", config.columns.get("item", "item_id"))
        if item_col not in meta.columns:
            raise DataError(meta_path, f"missing item id column (columns: {list(meta.columns)})", field=item_col)
        meta = meta.rename(columns={item_col: "item_id"})
        items = items_frame(meta[[c for c in ITEM_COLUMNS if c in meta.columns]])
        files.append(meta_path)
    else:
        items = items_frame(pd.DataFrame({"item_id": []}))
    items, added = fill_missing_items(items, interactions)
    if added:
        notes.append(f"{added} items have no metadata: their id stands in for the title")
    return SourceData(interactions, items, files, notes=notes)


def _load(path: Path) -> pd.DataFrame:
    require_file(path)
    suffix = "".join(path.suffixes[-2:]).lower()
    if suffix.endswith(".parquet"):
        try:
            frame = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several types for damaged files
            raise DataError(path, f"not a readable Parquet file ({exc})") from None
    elif suffix.endswith((".csv", ".csv.gz", ".tsv", ".tsv.gz")):
        import io

        sep = "\t" if ".tsv" in suffix else ","
        try:
            frame = pd.read_csv(io.BytesIO(read_bytes(path)), sep=sep, dtype=str, keep_default_na=False,
                                na_values=[""])
        except pd.errors.ParserError as exc:
            raise DataError(path, f"not a readable CSV file ({exc})") from None
    else:
        raise ConfigError(f"{path}: the table source reads .csv, .tsv (optionally .gz) or .parquet files")
    if frame.empty:
        raise DataError(path, "file has no data rows")
    return frame


def _timestamps(path: Path, values: pd.Series, numbers: np.ndarray, field: str) -> np.ndarray:
    """Unix seconds, or ISO-8601 date/time strings converted to Unix seconds."""
    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.notna().all():
        return numeric_column(path, values.to_numpy(), numbers, field, integer=True, low=0)
    parsed = pd.to_datetime(values.where(numeric.isna()), errors="coerce", utc=True, format="ISO8601")
    bad = numeric.isna() & parsed.isna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(path, f"expected Unix seconds or an ISO-8601 date, found {values.iloc[i]!r}",
                        row=int(numbers[i]), field=field)
    seconds = (parsed - pd.Timestamp("1970-01-01", tz="UTC")) // pd.Timedelta(seconds=1)
    return numeric.fillna(seconds).astype("int64").to_numpy()
