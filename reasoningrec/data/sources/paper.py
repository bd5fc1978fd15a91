"""The ReasoningRec authors' processed data: ``ratings.csv`` + ``processed_item_information.json``."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa

from reasoningrec.data.schema import items_frame
from reasoningrec.data.sources import Chunk, ReadContext, SourceData
from reasoningrec.data.sources.table import read_csv_columns
from reasoningrec.data.text import read_text
from reasoningrec.errors import DataError

# key -> (column in ratings.csv, kind): the authors' ids are integers.
_COLUMNS = {
    "item": ("item", "int_id"),
    "user": ("user", "int_id"),
    "rating": ("rating", "number"),
    "timestamp": ("timestamp", "integer"),
}


def read_paper(root: Path, context: ReadContext) -> SourceData:
    ratings_path, info_path = root / "ratings.csv", root / "processed_item_information.json"
    encoding, setting = context.encoding, context.setting("encoding")
    text = read_text(ratings_path, encoding, setting)
    facts = {str(ratings_path): text.facts()}
    columns, where, _ = read_csv_columns(
        text,
        _COLUMNS,
        ",",
        lambda key: "the authors' files have item,user,rating,timestamp",
        lambda: read_text(ratings_path, encoding, setting),
    )
    del text
    table = pa.table(
        {
            "user_id": columns["user"],
            "item_id": columns["item"],
            "rating": columns["rating"],
            "timestamp": columns["timestamp"],
        }
    )
    table = table.append_column("review", pa.nulls(len(table), pa.string()))
    chunk = Chunk(table, ratings_path, where, {"user_id": "user", "item_id": "item"})
    info_text = read_text(info_path, encoding, setting)
    facts[str(info_path)] = info_text.facts()
    try:
        info = json.loads(info_text.data)
    except json.JSONDecodeError as exc:
        raise DataError(info_path, f"not valid JSON ({exc.msg})", line=exc.lineno) from None
    if not isinstance(info, dict):
        raise DataError(info_path, "expected an object mapping item id -> {title, brand, price, description}")
    rows = []
    for position, (key, value) in enumerate(info.items()):
        if value is not None and not isinstance(value, dict):
            raise DataError(
                info_path, "expected an object {title, brand, price, description}", record=position, field=str(key)
            )
        rows.append(
            {"item_id": str(key), **{f: (value or {}).get(f) for f in ("title", "brand", "price", "description")}}
        )
    items = items_frame(pd.DataFrame(rows, columns=["item_id", "title", "brand", "price", "description"]))
    return SourceData(
        [chunk],
        items,
        [ratings_path, info_path],
        text_facts=facts,
        notes=["items.description holds the authors' LLM-written (Mixtral) item descriptions"],
        missing_items_note=f"{{n}} rated items missing from {info_path.name} got their id as title",
    )
