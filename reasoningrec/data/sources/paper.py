"""The ReasoningRec authors' processed data: ``ratings.csv`` + ``processed_item_information.json``."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from reasoningrec.data.readers import numeric_column, rating_range, read_bytes, split_fields
from reasoningrec.data.schema import fill_missing_items, interactions_frame, items_frame
from reasoningrec.data.sources import SourceData
from reasoningrec.errors import DataError

_COLUMNS = ["item", "user", "rating", "timestamp"]


def read_paper(root: Path, config, params) -> SourceData:
    ratings_path, info_path = root / "ratings.csv", root / "processed_item_information.json"
    columns, numbers = _csv_columns(ratings_path)
    low, high = rating_range(params)
    interactions = interactions_frame(
        numeric_column(ratings_path, columns["user"], numbers, "user", integer=True),
        numeric_column(ratings_path, columns["item"], numbers, "item", integer=True),
        numeric_column(ratings_path, columns["rating"], numbers, "rating", low=low, high=high),
        numeric_column(ratings_path, columns["timestamp"], numbers, "timestamp", integer=True, low=0),
    )
    try:
        info = json.loads(read_bytes(info_path))
    except json.JSONDecodeError as exc:
        raise DataError(info_path, f"not valid JSON ({exc.msg})", row=exc.lineno) from None
    if not isinstance(info, dict):
        raise DataError(info_path, "expected an object mapping item id -> {title, brand, price, description}")
    rows = [{"item_id": str(k), **{f: (v or {}).get(f) for f in ("title", "brand", "price", "description")}}
            for k, v in info.items()]
    items = items_frame(pd.DataFrame(rows, columns=["item_id", "title", "brand", "price", "description"]))
    items, added = fill_missing_items(items, interactions)
    notes = [f"{added} rated items missing from {info_path.name} got their id as title"] if added else []
    notes.append("items.description holds the authors' LLM-written (Mixtral) item descriptions")
    return SourceData(interactions, items, [ratings_path, info_path], notes=notes)


def _csv_columns(path: Path):
    """Columns of the header-led CSV, in whatever order the header lists them."""
    header = read_bytes(path).split(b"\n", 1)[0].decode("utf-8").strip().split(",")
    missing = [c for c in _COLUMNS if c not in header]
    if missing:
        raise DataError(path, f"missing column(s) {missing}; header has {header}", row=1, field=missing[0])
    columns, numbers = split_fields(path, ",", header, header=True)
    return columns, numbers
