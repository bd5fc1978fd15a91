"""MovieLens 100K (``u.data`` + ``u.item``) and 1M (``ratings.dat`` or the timestamp-less copy).

The GroupLens files are latin-1 (``datasets.<name>.encoding`` overrides it). The counts a release
declares are checked against what was read: ML-100K's ``u.info`` (users, items, ratings) and the
ML-1M README's ratings and users, when those files sit beside the ratings.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from reasoningrec.data.readers import (
    ID_TYPE,
    arrow_csv,
    line_locator,
    numeric_column,
    require_file,
    split_fields,
)
from reasoningrec.data.schema import items_frame
from reasoningrec.data.sources import Chunk, Declared, ReadContext, SourceData
from reasoningrec.data.text import Text, read_text, require_final_newline
from reasoningrec.errors import DataError

_TITLE_YEAR = re.compile(r"^(.*?)\s*\((\d{4})\)\s*$")
_FIELDS = {"user": "user_id", "item": "item_id", "rating": "rating", "timestamp": "timestamp"}


def split_title_year(title: str) -> tuple[str, int | None]:
    """``"Toy Story (1995)"`` -> ``("Toy Story", 1995)``; titles without a year keep it ``None``."""
    match = _TITLE_YEAR.match(title)
    return (match.group(1), int(match.group(2))) if match else (title.strip(), None)


def _text(path: Path, context: ReadContext) -> Text:
    text = read_text(require_file(path), context.encoding, context.setting("encoding"))
    require_final_newline(text)
    return text


def _fast_ratings(text: Text, sep: str, names: list[str]) -> pa.Table | None:
    """pyarrow's parse of a ratings file; ``::`` is read as ``:`` with empty columns between fields."""
    columns, types = [], {}
    for i, name in enumerate(names):
        if sep == "::" and i:
            columns.append(f"_sep{i}")
            types[f"_sep{i}"] = ID_TYPE
        columns.append(name)
        types[name] = {"user": ID_TYPE, "item": ID_TYPE, "rating": pa.float64(), "timestamp": pa.int64()}[name]
    try:
        table = arrow_csv(text, delimiter=sep[0], names=columns, types=types, include=columns, quoted=False)
    except pa.ArrowInvalid:
        return None
    for name in columns:
        if name.startswith("_sep") and pc.any(pc.not_equal(table.column(name).combine_chunks().dictionary, "")).as_py():
            return None
    rating = table.column("rating")
    if rating.null_count or not pc.all(pc.is_finite(rating)).as_py():
        return None
    return table.select(names)


def _ratings(path: Path, context: ReadContext, sep: str, names: list[str]) -> tuple[Chunk, dict]:
    """One ratings file as a chunk (and its text facts): the fast path, else the precise one."""
    text = _text(path, context)
    facts = text.facts()
    table = _fast_ratings(text, sep, names)
    if table is None:
        columns, numbers = split_fields(text, sep, names)
        out = {
            "user": columns["user"],
            "item": columns["item"],
            "rating": pa.array(numeric_column(path, columns["rating"], numbers, "rating")),
        }
        if "timestamp" in names:
            out["timestamp"] = pa.array(numeric_column(path, columns["timestamp"], numbers, "timestamp", integer=True))
        table = pa.table(out)
    table = table.rename_columns([_FIELDS[n] for n in table.column_names])
    if "timestamp" not in table.column_names:
        table = table.append_column("timestamp", pa.array(np.arange(len(table), dtype=np.int64)))
    table = table.append_column("review", pa.nulls(len(table), pa.string()))
    encoding, setting = context.encoding, context.setting("encoding")
    where = lambda i: line_locator(read_text(path, encoding, setting))(i)  # noqa: E731  (re-read on error only)
    return Chunk(table, path, where, {v: k for k, v in _FIELDS.items()}), facts


def _declared_ml100k(path: Path) -> list[Declared]:
    """``u.info``: ``943 users`` / ``1682 items`` / ``100000 ratings``."""
    if not path.is_file():
        return []
    out = []
    for line in path.read_bytes().decode("latin-1").splitlines():
        match = re.fullmatch(r"\s*(\d+)\s+(users|items|ratings)\s*", line)
        if match:
            out.append(Declared(path, match.group(2), int(match.group(1))))
    return out


def _declared_ml1m(path: Path) -> list[Declared]:
    """The README's "1,000,209 anonymous ratings ... made by 6,040 MovieLens users"."""
    if not path.is_file():
        return []
    text = " ".join(path.read_bytes().decode("latin-1").split())
    out = []
    for what, pattern in (("ratings", r"([\d,]+) anonymous ratings"), ("users", r"made by ([\d,]+) MovieLens users")):
        match = re.search(pattern, text)
        if match:
            out.append(Declared(path, what, int(match.group(1).replace(",", ""))))
    return out


def read_ml100k(root: Path, context: ReadContext) -> SourceData:
    data_path, item_path, genre_path = root / "u.data", root / "u.item", root / "u.genre"
    chunk, data_facts = _ratings(data_path, context, "\t", ["user", "item", "rating", "timestamp"])
    genres = _genre_names(genre_path, context)
    names = ["item_id", "title", "release", "video", "url"] + [f"g{i}" for i in range(len(genres))]
    item_text = _text(item_path, context)
    columns, numbers = split_fields(item_text, "|", names)
    titles, years = zip(*(split_title_year(t) for t in columns["title"].to_pylist()), strict=True)
    release_year = pd.to_numeric(pc.utf8_slice_codeunits(columns["release"], -4).to_pandas(), errors="coerce")
    flags = np.column_stack(
        [
            numeric_column(item_path, columns[f"g{i}"], numbers, f"genre flag {genres[i]}", integer=True)
            for i in range(len(genres))
        ]
    )
    items = items_frame(
        pd.DataFrame(
            {
                "item_id": columns["item_id"].to_pylist(),
                "title": titles,
                "year": release_year.fillna(pd.Series(years, dtype="float64")),
                "genres": ["|".join(g for g, on in zip(genres, row, strict=True) if on) or None for row in flags],
            }
        )
    )
    facts = {str(data_path): data_facts, str(item_path): item_text.facts()}
    return SourceData(
        [chunk],
        items,
        [data_path, item_path, genre_path],
        text_facts=facts,
        declared=_declared_ml100k(root / "u.info"),
        missing_items_note="{n} rated items missing from u.item got their id as title",
    )


def _genre_names(path: Path, context: ReadContext) -> list[str]:
    columns, numbers = split_fields(_text(path, context), "|", ["name", "index"])
    index = numeric_column(path, columns["index"], numbers, "index", integer=True)
    names = columns["name"].to_pylist()
    return [name for _, name in sorted(zip(index, names, strict=True))]


def read_ml1m(root: Path, context: ReadContext) -> SourceData:
    timed, untimed = root / "ratings.dat", root / "ratings_no_timestamp.dat.gz"
    notes: list[str] = []
    if timed.is_file():
        chunk, rating_facts = _ratings(timed, context, "::", ["user", "item", "rating", "timestamp"])
        rating_file, time_source = timed, "timestamp"
    elif untimed.is_file():
        chunk, rating_facts = _ratings(untimed, context, "::", ["user", "item", "rating"])
        rating_file, time_source = untimed, "file_order"
        notes.append(f"{untimed.name} has no timestamps: the row's position in the file stands in for time")
    else:
        raise DataError(timed, f"not found (nor {untimed.name})")
    movies_path = require_file(root / "movies.dat")
    movies_text = _text(movies_path, context)
    columns, _ = split_fields(movies_text, "::", ["item_id", "title", "genres"])
    titles, years = zip(*(split_title_year(t) for t in columns["title"].to_pylist()), strict=True)
    items = items_frame(
        pd.DataFrame(
            {
                "item_id": columns["item_id"].to_pylist(),
                "title": titles,
                "year": years,
                "genres": columns["genres"].to_pylist(),
            }
        )
    )
    files, extra = [rating_file, movies_path], {}
    facts = {str(rating_file): rating_facts, str(movies_path): movies_text.facts()}
    users_path = root / "users.dat"
    if users_path.is_file():
        names = ["user_id", "gender", "age", "occupation", "zip"]
        users_text = _text(users_path, context)
        columns, _ = split_fields(users_text, "::", names)
        users = pd.DataFrame({n: columns[n].to_pylist() for n in names})
        users["user_id"] = users["user_id"].str.strip()  # the id whitespace rule (data/contract.py)
        extra["users"] = users
        files.append(users_path)
        facts[str(users_path)] = users_text.facts()
    return SourceData(
        [chunk],
        items,
        files,
        time_source=time_source,
        notes=notes,
        extra_tables=extra,
        text_facts=facts,
        declared=_declared_ml1m(root / "README"),
        missing_items_note="{n} rated items missing from movies.dat got their id as title",
    )
