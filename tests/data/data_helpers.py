"""Small builders for the data-layer tests (hand-made raw files in tmp_path)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from reasoningrec.config import parse_params

GENRES = [
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
]


def make_params(root: Path, datasets: dict, **sections):
    """Params whose data_dir/work_dir live under ``root`` (the caller clears $REASONINGREC_DATA_DIR)."""
    raw = {"paths": {"data_dir": str(root / "raw"), "work_dir": str(root / "work")}, "datasets": datasets}
    raw.update(sections)
    return parse_params(raw, "test")


def write(path: Path, content: str | bytes, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        content = content.encode(encoding)
    path.write_bytes(content)
    return path


def ml100k(folder: Path, data: str | None = None, items: list[str] | None = None) -> Path:
    """A minimal ML-100K folder (u.data, u.item latin-1, u.genre)."""
    flags = "|".join(["0"] * 19)
    action = "|".join(["0", "1"] + ["0"] * 17)
    items = items or [
        f"1|Toy Story (1995)|01-Jan-1995||http://x|{flags}",
        f"2|Misérables, Les (1995)|01-Jan-1995||http://x|{action}",
        f"3|unknown||||{flags}",
    ]
    write(folder / "u.item", "\n".join(items) + "\n", "latin-1")
    write(folder / "u.genre", "".join(f"{g}|{i}\n" for i, g in enumerate(GENRES)) + "\n")
    data = data if data is not None else "1\t1\t5\t880000000\n1\t2\t3\t880000100\n2\t3\t4\t880000200\n"
    write(folder / "u.data", data)
    return folder


def amazon2018_line(user="U1", asin="A1", overall=5.0, time=1400000000, text="great", **extra) -> str:
    obj = {
        "overall": overall,
        "reviewerID": user,
        "asin": asin,
        "reviewText": text,
        "summary": "s",
        "unixReviewTime": time,
        **extra,
    }
    return json.dumps(obj)


def gz(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(text.encode("utf-8")))
    return path
