"""Amazon Review Data 2018 (Ni et al.) and Amazon Reviews 2023 (Hou et al.): JSON lines, gzipped or not."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pandas as pd

from reasoningrec.data.readers import json_lines, rating_range, read_bytes, required
from reasoningrec.data.schema import fill_missing_items, interactions_frame, items_frame
from reasoningrec.data.sources import SourceData
from reasoningrec.errors import DataError


def read_amazon2018(path: Path, config, params) -> SourceData:
    fields = {"user": ("reviewerID",), "item": ("asin",), "rating": ("overall",), "time": ("unixReviewTime",)}
    interactions = _reviews(path, params, fields, text=("reviewText", "summary"), time_scale=1)
    return _with_meta(path, config, params, interactions, _meta_2018)


def read_amazon2023(path: Path, config, params) -> SourceData:
    fields = {"user": ("user_id",), "item": ("parent_asin", "asin"), "rating": ("rating",), "time": ("timestamp",)}
    # 2023 timestamps are Unix milliseconds.
    interactions = _reviews(path, params, fields, text=("text", "title"), time_scale=1000)
    return _with_meta(path, config, params, interactions, _meta_2023)


def _reviews(path: Path, params, fields: dict, text: tuple[str, str], time_scale: int) -> pd.DataFrame:
    low, high = rating_range(params)
    users, items, ratings, times, reviews = [], [], [], [], []
    for number, obj in json_lines(path):
        users.append(str(required(path, obj, number, *fields["user"])))
        items.append(str(required(path, obj, number, *fields["item"])))
        ratings.append(_number(path, required(path, obj, number, *fields["rating"]), number,
                               fields["rating"][0], low, high))
        times.append(int(_number(path, required(path, obj, number, *fields["time"]), number,
                                 fields["time"][0], 0, None, integer=True)) // time_scale)
        body, headline = obj.get(text[0]), obj.get(text[1])
        reviews.append(body if isinstance(body, str) and body.strip() else
                       headline if isinstance(headline, str) and headline.strip() else None)
    return interactions_frame(users, items, ratings, times, reviews)


def _number(path, value, number, field, low, high, integer=False) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        kind = "an integer" if integer else "a number"
        raise DataError(path, f"expected {kind}, found {value!r}", row=number, field=field) from None
    if out != out or (integer and out != int(out)):
        raise DataError(path, f"expected an integer, found {value!r}", row=number, field=field)
    if (low is not None and out < low) or (high is not None and out > high):
        raise DataError(path, f"value {value!r} is outside the allowed range [{low}, {high}]", row=number, field=field)
    return out


def _with_meta(path: Path, config, params, interactions: pd.DataFrame, parse_meta) -> SourceData:
    files, notes = [path], []
    if config.meta_path:
        meta_path = params.data_dir / config.meta_path
        items = items_frame(pd.DataFrame(parse_meta(meta_path), columns=["item_id", "title", "brand", "price",
                                                                          "genres", "description"]))
        files.append(meta_path)
        items = items[items["item_id"].isin(set(interactions["item_id"]))]
        items, added = fill_missing_items(items.reset_index(drop=True), interactions)
        if added:
            notes.append(f"{added} items have no metadata row: their asin stands in for the title")
    else:
        items, _ = fill_missing_items(items_frame(pd.DataFrame({"item_id": []})), interactions)
        notes.append("no item metadata (meta_path unset): every item's asin stands in for its title")
    return SourceData(interactions, items, files, notes=notes)


def _text(value) -> str | None:
    if isinstance(value, list):
        value = " ".join(str(v) for v in value if v)
    if value is None:
        return None
    value = str(value).strip()
    return value or None


def _meta_objects(path: Path):
    """Metadata rows; the 2018 dumps of some categories are Python dict literals, not JSON."""
    raw = read_bytes(path)
    for number, line in enumerate(raw.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError:
            try:
                yield number, ast.literal_eval(line.decode("utf-8"))
            except (ValueError, SyntaxError):
                raise DataError(path, "not valid JSON", row=number) from None


def _meta_2018(path: Path):
    for number, obj in _meta_objects(path):
        categories = obj.get("category") or []
        yield (str(required(path, obj, number, "asin")), _text(obj.get("title")), _text(obj.get("brand")),
               _text(obj.get("price")), "|".join(categories) if isinstance(categories, list) else _text(categories),
               _text(obj.get("description")))


def _meta_2023(path: Path):
    for number, obj in _meta_objects(path):
        categories = obj.get("categories") or []
        price = obj.get("price")
        yield (str(required(path, obj, number, "parent_asin", "asin")), _text(obj.get("title")),
               _text(obj.get("store")), None if price in (None, "") else str(price),
               "|".join(categories) if isinstance(categories, list) else _text(categories),
               _text(obj.get("description")))
