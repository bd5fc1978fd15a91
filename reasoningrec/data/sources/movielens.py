"""MovieLens 100K (``u.data`` + ``u.item``) and 1M (``ratings.dat`` or the timestamp-less copy)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.compute as pc

from reasoningrec.data.readers import numeric_column, rating_range, require_file, split_fields
from reasoningrec.data.schema import fill_missing_items, interactions_frame, items_frame
from reasoningrec.data.sources import SourceData
from reasoningrec.errors import DataError

_TITLE_YEAR = re.compile(r"^(.*?)\s*\((\d{4})\)\s*$")
# MovieLens text files predate UTF-8; titles such as "Misérables" are latin-1 bytes.
_ENCODING = "latin-1"


def split_title_year(title: str) -> tuple[str, int | None]:
    """``"Toy Story (1995)"`` -> ``("Toy Story", 1995)``; titles without a year keep it ``None``."""
    match = _TITLE_YEAR.match(title)
    return (match.group(1), int(match.group(2))) if match else (title.strip(), None)


def _ratings(path: Path, sep: str, names: list[str], params) -> tuple[dict, np.ndarray]:
    columns, numbers = split_fields(path, sep, names, encoding=_ENCODING)
    low, high = rating_range(params)
    out = {
        "user_id": columns["user"].to_numpy(zero_copy_only=False),
        "item_id": columns["item"].to_numpy(zero_copy_only=False),
        "rating": numeric_column(path, columns["rating"], numbers, "rating", low=low, high=high),
    }
    for key in ("user_id", "item_id"):
        _check_ids(path, out[key], numbers, key)
    if "timestamp" in columns:
        out["timestamp"] = numeric_column(path, columns["timestamp"], numbers, "timestamp", integer=True, low=0)
    return out, numbers


def _check_ids(path: Path, values: np.ndarray, numbers: np.ndarray, field: str) -> None:
    blank = pd.Series(values).astype(str).str.strip().eq("").to_numpy()
    if blank.any():
        raise DataError(path, "empty id", row=int(numbers[np.flatnonzero(blank)[0]]), field=field)


def read_ml100k(root: Path, config, params) -> SourceData:
    data_path, item_path, genre_path = root / "u.data", root / "u.item", root / "u.genre"
    ratings, _ = _ratings(data_path, "\t", ["user", "item", "rating", "timestamp"], params)
    interactions = interactions_frame(**ratings)

    genres = _genre_names(genre_path)
    names = ["item_id", "title", "release", "video", "url"] + [f"g{i}" for i in range(len(genres))]
    columns, numbers = split_fields(require_file(item_path), "|", names, encoding=_ENCODING)
    titles, years = zip(*(split_title_year(t) for t in columns["title"].to_pylist()), strict=True)
    release_year = pd.to_numeric(pc.utf8_slice_codeunits(columns["release"], -4).to_pandas(), errors="coerce")
    flags = np.column_stack(
        [numeric_column(item_path, columns[f"g{i}"], numbers, f"genre flag {genres[i]}", integer=True)
         for i in range(len(genres))]
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
    items, added = fill_missing_items(items, interactions)
    notes = [f"{added} rated items missing from u.item got their id as title"] if added else []
    return SourceData(interactions, items, [data_path, item_path, genre_path], notes=notes)


def _genre_names(path: Path) -> list[str]:
    columns, numbers = split_fields(require_file(path), "|", ["name", "index"], encoding=_ENCODING)
    index = numeric_column(path, columns["index"], numbers, "index", integer=True)
    names = columns["name"].to_pylist()
    return [name for _, name in sorted(zip(index, names, strict=True))]


def read_ml1m(root: Path, config, params) -> SourceData:
    timed, untimed = root / "ratings.dat", root / "ratings_no_timestamp.dat.gz"
    notes: list[str] = []
    if timed.is_file():
        ratings, _ = _ratings(timed, "::", ["user", "item", "rating", "timestamp"], params)
        rating_file, time_source = timed, "timestamp"
    elif untimed.is_file():
        ratings, _ = _ratings(untimed, "::", ["user", "item", "rating"], params)
        ratings["timestamp"] = np.arange(len(ratings["rating"]), dtype="int64")
        rating_file, time_source = untimed, "file_order"
        notes.append(f"{untimed.name} has no timestamps: the row's position in the file stands in for time")
    else:
        raise DataError(timed, f"not found (nor {untimed.name})")
    interactions = interactions_frame(**ratings)

    movies_path = require_file(root / "movies.dat")
    columns, _ = split_fields(movies_path, "::", ["item_id", "title", "genres"], encoding=_ENCODING)
    titles, years = zip(*(split_title_year(t) for t in columns["title"].to_pylist()), strict=True)
    items = items_frame(
        pd.DataFrame(
            {"item_id": columns["item_id"].to_pylist(), "title": titles, "year": years,
             "genres": columns["genres"].to_pylist()}
        )
    )
    items, added = fill_missing_items(items, interactions)
    if added:
        notes.append(f"{added} rated items missing from movies.dat got their id as title")
    files, extra = [rating_file, movies_path], {}
    users_path = root / "users.dat"
    if users_path.is_file():
        names = ["user_id", "gender", "age", "occupation", "zip"]
        columns, _ = split_fields(users_path, "::", names, encoding=_ENCODING)
        extra["users"] = pd.DataFrame({n: columns[n].to_pylist() for n in names})
        files.append(users_path)
    return SourceData(interactions, items, files, time_source=time_source, notes=notes, extra_tables=extra)
