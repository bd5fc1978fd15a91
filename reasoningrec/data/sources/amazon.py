"""Amazon Review Data 2018 (Ni et al.) and Amazon Reviews 2023 (Hou et al.): JSON lines, gzipped or not.

The review file is read in blocks of whole lines (a full category does not fit in memory with its
texts): pyarrow parses each block with the fields' types and ignores the others; a block it rejects
is parsed again line by line with checks that name the line and field.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from reasoningrec.data.readers import json_lines, nonempty_text, required
from reasoningrec.data.schema import items_frame
from reasoningrec.data.sources import Chunk, ReadContext, SourceData
from reasoningrec.data.text import Block, file_text_facts, read_text, text_blocks
from reasoningrec.errors import DataError


@dataclass(frozen=True)
class Fields:
    """Where a release keeps each contract field (alternatives in order of preference)."""

    user: tuple[str, ...]
    item: tuple[str, ...]
    rating: str
    time: str
    text: tuple[str, str]  # review body, then the headline it falls back to
    per_second: int  # timestamp units per second


FIELDS_2018 = Fields(("reviewerID",), ("asin",), "overall", "unixReviewTime", ("reviewText", "summary"), 1)
FIELDS_2023 = Fields(("user_id",), ("parent_asin", "asin"), "rating", "timestamp", ("text", "title"), 1000)


def read_amazon2018(path: Path, context: ReadContext) -> SourceData:
    return _read(path, context, FIELDS_2018, _meta_2018)


def read_amazon2023(path: Path, context: ReadContext) -> SourceData:
    # 2023 timestamps are Unix milliseconds.
    return _read(path, context, FIELDS_2023, _meta_2023)


def _read(path: Path, context: ReadContext, fields: Fields, parse_meta) -> SourceData:
    if not path.is_file():
        raise DataError(path, "file not found")
    files, notes, facts = [path], [], {str(path): file_text_facts(path, context.encoding)}
    config = context.config
    if config.meta_path:
        meta_path = context.params.data_dir / config.meta_path
        meta_text = read_text(meta_path, context.encoding, context.setting("encoding"))
        facts[str(meta_path)] = meta_text.facts()
        items = items_frame(
            pd.DataFrame(parse_meta(meta_text), columns=["item_id", "title", "brand", "price", "genres", "description"])
        )
        files.append(meta_path)
        note = "{n} items have no metadata row: their asin stands in for the title"
    else:
        items = items_frame(pd.DataFrame({"item_id": []}))
        notes.append("no item metadata (meta_path unset): every item's asin stands in for its title")
        note = "{n} items without metadata"
    chunks = _chunks(path, context, fields)
    return SourceData(
        chunks,
        items,
        files,
        notes=notes,
        items_rated_only=True,
        text_facts=facts,
        missing_items_note=note if config.meta_path else "",
    )


def _chunks(path: Path, context: ReadContext, fields: Fields) -> Iterator[Chunk]:
    names = {
        "user_id": " or ".join(fields.user),
        "item_id": " or ".join(fields.item),
        "rating": fields.rating,
        "timestamp": fields.time,
    }
    for block in text_blocks(path, context.encoding, context.setting("encoding")):
        table = _fast_block(block.data, fields)
        if table is None:
            table = _precise_block(path, block, fields)
        yield Chunk(table, path, _block_lines(block), names)


def _block_lines(block: Block):
    def where(i: int) -> dict:
        lines = [n for n, line in enumerate(block.data.split(b"\n"), start=block.first_line) if line.strip()]
        return {"line": lines[min(i, len(lines) - 1)]}

    return where


def _schema(fields: Fields) -> pa.Schema:
    strings = [*fields.user, *fields.item, *fields.text]
    return pa.schema(
        [
            *((name, pa.string()) for name in dict.fromkeys(strings)),
            (fields.rating, pa.float64()),
            (fields.time, pa.int64()),
        ]
    )


def _first_present(table: pa.Table, names: tuple[str, ...]) -> pa.Array:
    """Per row, the first of ``names`` that is present and not empty (null if none is)."""
    out = None
    for name in names:
        column = table.column(name).combine_chunks()
        column = pc.if_else(pc.equal(column, ""), pa.scalar(None, pa.string()), column)
        out = column if out is None else pc.coalesce(out, column)
    return out


def _fast_block(data: bytes, fields: Fields) -> pa.Table | None:
    import pyarrow.json as pj

    if not data.strip():
        return _assemble([], [], [], [], [], fields)
    try:
        table = pj.read_json(
            pa.BufferReader(pa.py_buffer(data)),
            read_options=pj.ReadOptions(use_threads=True, block_size=4 << 20),
            parse_options=pj.ParseOptions(
                explicit_schema=_schema(fields), unexpected_field_behavior="ignore", newlines_in_values=False
            ),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError):
        return None
    body, headline = (nonempty_text(table.column(name)) for name in fields.text)
    stamps = table.column(fields.time).combine_chunks()
    if fields.per_second != 1:
        stamps = pa.array(
            np.floor_divide(stamps.fill_null(0).to_numpy(), fields.per_second),
            mask=stamps.is_null().to_numpy(zero_copy_only=False),
        )
    return pa.table(
        {
            "user_id": _first_present(table, fields.user),
            "item_id": _first_present(table, fields.item),
            "rating": table.column(fields.rating),
            "timestamp": stamps,
            "review": pc.coalesce(body, headline),
        }
    )


def _number(path: Path, value, line: int, field: str, integer: bool = False) -> float:
    kind = "an integer" if integer else "a number"
    try:
        if isinstance(value, bool):
            raise TypeError
        out = float(value)
    except (TypeError, ValueError):
        raise DataError(path, f"expected {kind}, found {value!r}", line=line, field=field) from None
    if not np.isfinite(out) or (integer and out != int(out)):
        raise DataError(path, f"expected {kind}, found {value!r}", line=line, field=field)
    return out


def _precise_block(path: Path, block: Block, fields: Fields) -> pa.Table:
    """One block parsed line by line (the lines pyarrow rejected name themselves here)."""
    users, items, ratings, times, reviews = [], [], [], [], []
    for number, obj in json_lines(block.data, path, block.first_line):
        users.append(str(required(path, obj, number, *fields.user)))
        items.append(str(required(path, obj, number, *fields.item)))
        ratings.append(_number(path, required(path, obj, number, fields.rating), number, fields.rating))
        stamp = _number(path, required(path, obj, number, fields.time), number, fields.time, integer=True)
        times.append(int(stamp) // fields.per_second)
        body, headline = (obj.get(name) for name in fields.text)
        reviews.append(
            body
            if isinstance(body, str) and body.strip()
            else headline
            if isinstance(headline, str) and headline.strip()
            else None
        )
    return _assemble(users, items, ratings, times, reviews, fields)


def _assemble(users, items, ratings, times, reviews, fields: Fields) -> pa.Table:
    return pa.table(
        {
            "user_id": pa.array(users, pa.string()),
            "item_id": pa.array(items, pa.string()),
            "rating": pa.array(ratings, pa.float64()),
            "timestamp": pa.array(times, pa.int64()),
            "review": pa.array(reviews, pa.string()),
        }
    )


# --- item metadata ---------------------------------------------------------------------------


def _text(value) -> str | None:
    if isinstance(value, list):
        value = " ".join(str(v) for v in value if v)
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def _meta_objects(text):
    """Metadata rows; the 2018 dumps of some categories are Python dict literals, not JSON."""
    for number, line in enumerate(text.data.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            try:
                obj = ast.literal_eval(line.decode("utf-8"))
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                raise DataError(text.path, "not valid JSON", line=number) from None
        if not isinstance(obj, dict):
            raise DataError(text.path, "expected one JSON object per line", line=number)
        yield number, obj


def _meta_2018(text):
    for number, obj in _meta_objects(text):
        categories = obj.get("category") or []
        yield (
            str(required(text.path, obj, number, "asin")),
            _text(obj.get("title")),
            _text(obj.get("brand")),
            _text(obj.get("price")),
            "|".join(categories) if isinstance(categories, list) else _text(categories),
            _text(obj.get("description")),
        )


def _meta_2023(text):
    for number, obj in _meta_objects(text):
        categories = obj.get("categories") or []
        price = obj.get("price")
        yield (
            str(required(text.path, obj, number, "parent_asin", "asin")),
            _text(obj.get("title")),
            _text(obj.get("store")),
            None if price in (None, "") else str(price),
            "|".join(categories) if isinstance(categories, list) else _text(categories),
            _text(obj.get("description")),
        )
