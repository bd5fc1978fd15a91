"""Fault injection: damaged copies of the real files through the commands a user runs.

Each case copies real data (ML-100K, ML-1M, Amazon 2018 Beauty, a generic CSV/Parquet table made
from ML-100K) into a temporary folder, damages it, runs ``reasoningrec <command>`` in-process
through the CLI's entry point and checks: the exit code, fragments of the message, no traceback,
and, when a command fails, that it wrote nothing (no stage output created or changed, no temporary
left). A case that succeeds must keep every row (``rows``). ``test_tally`` sums the outcomes.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import shutil
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from conftest import SHARED_DATA

from reasoningrec.config import DATA_DIR_ENV

pytestmark = pytest.mark.data

ML100K_ROWS, ML1M_ROWS, BEAUTY_ROWS, TABLE_ROWS, PAPER_ROWS = 100_000, 1_000_209, 5_269, 3_000, 4_231
OUTPUT_SUFFIXES = (".parquet", ".json")


# --- building the damaged copies ---------------------------------------------------------------


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")[:-1]


def _write_lines(path: Path, lines: list[bytes], end: bytes = b"\n") -> None:
    path.write_bytes(b"".join(line + end for line in lines))


def _edit(path: Path, index: int, fn) -> None:
    lines = _lines(path)
    lines[index] = fn(lines[index])
    _write_lines(path, lines)


def _field(line: bytes, index: int, value: bytes, sep: bytes = b"\t") -> bytes:
    parts = line.split(sep)
    parts[index] = value
    return sep.join(parts)


def _gunzip(path: Path) -> bytes:
    return gzip.decompress(path.read_bytes())


def _regzip(path: Path, data: bytes) -> None:
    path.write_bytes(gzip.compress(data, compresslevel=1))


def _build_table(folder: Path) -> None:
    """A generic CSV from the first rows of the real u.data, with a quoted review column (real titles)."""
    titles = {}
    for line in (SHARED_DATA / "ml-100k" / "u.item").read_bytes().decode("latin-1").splitlines():
        parts = line.split("|")
        titles[parts[0]] = parts[1]
    rows = ["user,item,rating,timestamp,review"]
    for line in _lines(SHARED_DATA / "ml-100k" / "u.data")[:TABLE_ROWS]:
        user, item, rating, stamp = line.decode().split("\t")
        review = titles[item].replace('"', '""')
        rows.append(f'{user},{item},{rating},{stamp},"{review}"')
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "t.csv").write_bytes(("\n".join(rows) + "\n").encode("utf-8"))


def _build(kind: str, raw: Path) -> None:
    if kind == "ml100k":
        shutil.copytree(SHARED_DATA / "ml-100k", raw / "ml", copy_function=shutil.copyfile)
    elif kind == "ml1m":
        shutil.copytree(SHARED_DATA / "ml-1m", raw / "ml1m", copy_function=shutil.copyfile)
    elif kind == "paper":
        shutil.copytree(
            SHARED_DATA / "reasoningrec-paper" / "beauty",
            raw / "pb",
            copy_function=shutil.copyfile,
            ignore=shutil.ignore_patterns("sft_*", "user_profile*"),
        )
    elif kind == "amazon":
        (raw / "az").mkdir(parents=True)
        shutil.copyfile(SHARED_DATA / "amazon2018" / "All_Beauty_5.json.gz", raw / "az" / "r.json.gz")
    elif kind in ("table", "parquet", "tsv"):
        _build_table(raw / "tb")
        if kind in ("parquet", "tsv"):
            import pandas as pd

            frame = pd.read_csv(raw / "tb" / "t.csv", dtype={"user": str, "item": str})
            if kind == "parquet":
                frame.to_parquet(raw / "tb" / "t.parquet", index=False)
            else:
                (raw / "tb" / "t.tsv.gz").write_bytes(gzip.compress(frame.to_csv(sep="\t", index=False).encode()))


DATASETS = {
    "ml100k": {"source": "movielens100k", "path": "ml", "kcore": {"k": 20}},
    "ml1m": {"source": "movielens1m", "path": "ml1m", "kcore": {"k": 20}},
    "amazon": {"source": "amazon2018", "path": "az/r.json.gz", "kcore": {"k": 5}},
    "paper": {"source": "paper", "path": "pb", "kcore": {"k": 5}, "drop_duplicates": False},
    "table": {"source": "table", "path": "tb/t.csv", "kcore": {"k": 5}},
    "parquet": {"source": "table", "path": "tb/t.parquet", "kcore": {"k": 5}},
    "tsv": {"source": "table", "path": "tb/t.tsv.gz", "kcore": {"k": 5}},
}


@dataclass(frozen=True)
class Case:
    name: str
    kind: str  # which copy (DATASETS)
    damage: Callable[[Path], None] | None  # edits the copy; gets the raw folder
    fragments: tuple[str, ...] = ()
    exit_code: int = 2
    commands: tuple[str, ...] = ("ingest",)  # the last one is judged; the earlier ones must pass
    dataset: dict = field(default_factory=dict)  # overrides of the dataset's settings
    sections: dict = field(default_factory=dict)  # other params.yaml sections
    rows: int | None = None  # rows ingest.json must count when the judged command succeeds
    after: Callable[[Path], None] | None = None  # damage between the earlier commands and the judged one
    check: Callable[[Path], None] | None = None  # extra assertions on the work folder


def ml(raw: Path) -> Path:
    return raw / "ml" / "u.data"


def az(raw: Path) -> Path:
    return raw / "az" / "r.json.gz"


def tb(raw: Path) -> Path:
    return raw / "tb" / "t.csv"


def pb(raw: Path, name: str = "ratings.csv") -> Path:
    return raw / "pb" / name


def _latin1_review(raw: Path) -> None:
    data = _gunzip(az(raw)).split(b"\n")
    obj = json.loads(data[9])
    obj["reviewText"] = "caf\u00e9"
    data[9] = json.dumps(obj, ensure_ascii=False).encode("latin-1")
    _regzip(az(raw), b"\n".join(data))


def _amazon_line(index: int, **changes):
    def damage(raw: Path) -> None:
        data = _gunzip(az(raw)).split(b"\n")
        obj = json.loads(data[index])
        for key, value in changes.items():
            if value is None:
                obj.pop(key, None)
            else:
                obj[key] = value
        data[index] = json.dumps(obj).encode()
        _regzip(az(raw), b"\n".join(data))

    return damage


def _truncate_parquet(raw: Path, work: Path, name: str = "interactions.parquet") -> None:
    path = work / name
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _ml1m_head(raw: Path, lines: int) -> None:
    path = raw / "ml1m" / "ratings_no_timestamp.dat.gz"
    _regzip(path, b"\n".join(_gunzip(path).split(b"\n")[:lines]) + b"\n")


def _assert_ids_stripped(work: Path) -> None:
    summary = json.loads((work / "ingest.json").read_text())
    assert summary["ids_stripped"]["user_id"] > 0 and summary["ids_merged"]["user_id"] >= 0
    assert any("whitespace" in note for note in summary["notes"])


def _assert_bom(work: Path) -> None:
    summary = json.loads((work / "ingest.json").read_text())
    assert summary["source_files"][0]["bom"] is True


def _assert_crlf(work: Path) -> None:
    summary = json.loads((work / "ingest.json").read_text())
    assert summary["source_files"][0]["line_endings"] in ("crlf", "mixed")


def _assert_prepare_keeps_every_user(work: Path) -> None:
    summary = json.loads((work / "prepare.json").read_text())
    assert (summary["interactions"], summary["users"]) == (ML100K_ROWS, 943)  # every ML-100K user has >= 20


def _stale_temps(raw: Path) -> None:
    work = raw.parent / "work" / "d"
    (work / "validation").mkdir(parents=True, exist_ok=True)
    (work / ".interactions.parquet.abc123.tmp").write_bytes(b"PAR1")
    (work / "validation" / ".data_docs_interactions.x1y2.tmp").mkdir()


def _no_temps_left(work: Path) -> None:
    assert not [p for p in work.rglob(".*.tmp")], list(work.rglob(".*.tmp"))


CASES = [
    # --- MovieLens 100K ---------------------------------------------------------------------------
    Case("ml100k clean", "ml100k", None, exit_code=0, rows=ML100K_ROWS),
    Case(
        "ml100k BOM",
        "ml100k",
        lambda r: ml(r).write_bytes(b"\xef\xbb\xbf" + ml(r).read_bytes()),
        exit_code=0,
        rows=ML100K_ROWS,
        check=_assert_bom,
    ),
    Case(
        "ml100k BOM, through prepare",
        "ml100k",
        lambda r: ml(r).write_bytes(b"\xef\xbb\xbf" + ml(r).read_bytes()),
        exit_code=0,
        commands=("ingest", "validate", "prepare"),
        rows=ML100K_ROWS,
        check=_assert_prepare_keeps_every_user,
    ),
    Case(
        "ml100k CRLF",
        "ml100k",
        lambda r: ml(r).write_bytes(ml(r).read_bytes().replace(b"\n", b"\r\n")),
        exit_code=0,
        rows=ML100K_ROWS,
        check=_assert_crlf,
    ),
    Case(
        "ml100k mixed line endings",
        "ml100k",
        lambda r: _write_lines(ml(r), [x + (b"\r" if i % 2 else b"") for i, x in enumerate(_lines(ml(r)))]),
        exit_code=0,
        rows=ML100K_ROWS,
        check=_assert_crlf,
    ),
    Case(
        "ml100k cut mid-line",
        "ml100k",
        lambda r: ml(r).write_bytes(ml(r).read_bytes()[:1_000_000]),
        ("u.data, line 50", "no line ending", "cut short"),
    ),
    Case(
        "ml100k cut at a line end",
        "ml100k",
        lambda r: _write_lines(ml(r), _lines(ml(r))[:50_000]),
        ("50,000 ratings read", "u.info declares 100,000"),
    ),
    Case(
        "ml100k subset without u.info",
        "ml100k",
        lambda r: (_write_lines(ml(r), _lines(ml(r))[:50_000]), (r / "ml" / "u.info").unlink()),
        exit_code=0,
        rows=50_000,
    ),
    Case(
        "ml100k u.info edited",
        "ml100k",
        lambda r: (r / "ml" / "u.info").write_text("943 users\n1682 items\n99999 ratings\n"),
        ("100,000 ratings read", "u.info declares 99,999"),
    ),
    Case(
        "ml100k latin-1 letter in a rating",
        "ml100k",
        lambda r: _edit(ml(r), 9, lambda x: _field(x, 2, b"\xe9")),
        ("u.data, line 10, field 'rating'", "expected a number, found '\u00e9'"),
    ),
    Case(
        "ml100k undecodable byte, utf-8 declared",
        "ml100k",
        lambda r: _edit(ml(r), 99, lambda x: x + b"\xff"),
        ("u.data, line 100", "byte 0xff at byte offset", "not valid utf-8", "datasets.d.encoding"),
        dataset={"encoding": "utf-8"},
    ),
    Case(
        "ml100k UTF-16 file, default encoding",
        "ml100k",
        lambda r: ml(r).write_bytes(ml(r).read_bytes().decode("latin-1").encode("utf-16")),
        ("UTF-16 byte-order mark", "datasets.d.encoding: utf-16"),
    ),
    Case(
        "ml100k UTF-16 files, utf-16 declared",
        "ml100k",
        lambda r: [
            (p := r / "ml" / name).write_bytes(p.read_bytes().decode("latin-1").encode("utf-16"))
            for name in ("u.data", "u.item", "u.genre")
        ],
        exit_code=0,
        rows=ML100K_ROWS,
        dataset={"encoding": "utf-16"},
    ),
    Case(
        "ml100k rating 'five'",
        "ml100k",
        lambda r: _edit(ml(r), 41, lambda x: _field(x, 2, b"five")),
        ("u.data, line 42, field 'rating'", "expected a number, found 'five'"),
    ),
    Case(
        "ml100k rating 7",
        "ml100k",
        lambda r: _edit(ml(r), 41, lambda x: _field(x, 2, b"7")),
        ("u.data, line 42, field 'rating'", "value 7 is outside the allowed range [1, 5]"),
    ),
    Case(
        "ml100k rating NaN",
        "ml100k",
        lambda r: _edit(ml(r), 41, lambda x: _field(x, 2, b"nan")),
        ("line 42, field 'rating'", "expected a number, found 'nan'"),
    ),
    Case(
        "ml100k empty rating",
        "ml100k",
        lambda r: _edit(ml(r), 41, lambda x: _field(x, 2, b"")),
        ("line 42, field 'rating'", "expected a number, found ''"),
    ),
    Case(
        "ml100k timestamp 'yesterday'",
        "ml100k",
        lambda r: _edit(ml(r), 70_000, lambda x: _field(x, 3, b"yesterday")),
        ("line 70001, field 'timestamp'", "'yesterday'"),
    ),
    Case(
        "ml100k negative timestamp",
        "ml100k",
        lambda r: _edit(ml(r), 5, lambda x: _field(x, 3, b"-5")),
        ("line 6, field 'timestamp'", "outside the allowed range [0, inf]"),
    ),
    Case(
        "ml100k fractional timestamp",
        "ml100k",
        lambda r: _edit(ml(r), 5, lambda x: _field(x, 3, b"881250949.5")),
        ("line 6, field 'timestamp'", "expected an integer"),
    ),
    Case(
        "ml100k commas instead of tabs",
        "ml100k",
        lambda r: ml(r).write_bytes(ml(r).read_bytes().replace(b"\t", b",")),
        ("u.data, line 1", "expected 4 fields separated by '\\t', found 1"),
    ),
    Case(
        "ml100k extra field",
        "ml100k",
        lambda r: _edit(ml(r), 1234, lambda x: x + b"\t9"),
        ("line 1235", "expected 4 fields", "found 5"),
    ),
    Case(
        "ml100k missing field",
        "ml100k",
        lambda r: _edit(ml(r), 1234, lambda x: x.rsplit(b"\t", 1)[0]),
        ("line 1235", "expected 4 fields", "found 3"),
    ),
    Case(
        "ml100k blank lines, then a bad rating",
        "ml100k",
        lambda r: _write_lines(
            ml(r), _lines(ml(r))[:10] + [b"", b""] + [_field(_lines(ml(r))[10], 2, b"x")] + _lines(ml(r))[11:]
        ),
        ("line 13, field 'rating'",),
    ),
    Case(
        "ml100k blank lines only",
        "ml100k",
        lambda r: _write_lines(ml(r), _lines(ml(r))[:10] + [b"", b"\r"] + _lines(ml(r))[10:]),
        exit_code=0,
        rows=ML100K_ROWS,
    ),
    Case("ml100k empty u.data", "ml100k", lambda r: ml(r).write_bytes(b""), ("u.data: file is empty",)),
    Case("ml100k blank u.data", "ml100k", lambda r: ml(r).write_bytes(b"\n \n\t\n"), ("u.data: file is empty",)),
    Case("ml100k u.data missing", "ml100k", lambda r: ml(r).unlink(), ("u.data: file not found",)),
    Case("ml100k u.item missing", "ml100k", lambda r: (r / "ml" / "u.item").unlink(), ("u.item: file not found",)),
    Case(
        "ml100k bad genre flag",
        "ml100k",
        lambda r: _edit(r / "ml" / "u.item", 4, lambda x: x[:-1] + b"x"),
        ("u.item, line 5, field 'genre flag", "expected an integer, found 'x'"),
    ),
    Case(
        "ml100k u.item cut",
        "ml100k",
        lambda r: (r / "ml" / "u.item").write_bytes((r / "ml" / "u.item").read_bytes()[:-7]),
        ("u.item, line 1682", "cut short"),
    ),
    Case(
        "ml100k empty u.genre", "ml100k", lambda r: (r / "ml" / "u.genre").write_bytes(b""), ("u.genre: file is empty",)
    ),
    Case(
        "ml100k ids with spaces",
        "ml100k",
        lambda r: _write_lines(ml(r), [(b" " + x) if i % 3 == 0 else x for i, x in enumerate(_lines(ml(r)))]),
        exit_code=0,
        rows=ML100K_ROWS,
        check=_assert_ids_stripped,
    ),
    Case(
        "ml100k empty user id",
        "ml100k",
        lambda r: _edit(ml(r), 300, lambda x: _field(x, 0, b"  ")),
        ("u.data, line 301, field 'user'", "empty id"),
    ),
    Case("ml100k binary garbage", "ml100k", lambda r: ml(r).write_bytes(bytes(range(256)) * 50), ("u.data, line ",)),
    Case(
        "ml100k prepare after ingest",
        "ml100k",
        None,
        exit_code=0,
        commands=("ingest", "validate", "prepare"),
        rows=ML100K_ROWS,
    ),
    Case(
        "ml100k k above every user",
        "ml100k",
        None,
        ("no user survives", "k=1000", "datasets.d.kcore.k"),
        commands=("ingest", "prepare+stale"),
        dataset={"kcore": {"k": 1000}},
    ),
    Case(
        "ml100k k above every user, validated",
        "ml100k",
        None,
        ("validation FAILED", "some users survive the k-core filter"),
        commands=("ingest", "validate"),
        dataset={"kcore": {"k": 1000}},
    ),
    Case("ml100k validate after ingest", "ml100k", None, exit_code=0, commands=("ingest", "validate")),
    Case(
        "ml100k rating_min above rating_max",
        "ml100k",
        None,
        ("params.yaml: invalid settings: validate", "rating_min (6) is above rating_max (5)"),
        sections={"validate": {"rating_min": 6, "rating_max": 5}},
    ),
    Case(
        "ml100k rating scale narrower than the data",
        "ml100k",
        None,
        ("u.data, line 1, field 'rating'", "outside the allowed range [1, 2]"),
        sections={"validate": {"rating_min": 1, "rating_max": 2}},
    ),
    Case(
        "ml100k unknown encoding",
        "ml100k",
        None,
        ("datasets.d.encoding", "unknown text encoding 'klingon'"),
        dataset={"encoding": "klingon"},
    ),
    Case(
        "ml100k meta_path is not a setting of this source",
        "ml100k",
        None,
        ("params.yaml: datasets.d.meta_path",),
        dataset={"meta_path": "x.json"},
    ),
    # A file damaged between stages: the completion rule refuses it (it is not what its stage wrote) ...
    Case(
        "ml100k truncated interactions.parquet, then prepare",
        "ml100k",
        None,
        ("upstream stage ingest is not up to date", "output interactions.parquet", "reasoningrec ingest -d d"),
        commands=("ingest", "validate", "prepare"),
        after=_truncate_parquet,
    ),
    Case(
        "ml100k truncated interactions.parquet, then validate",
        "ml100k",
        None,
        ("upstream stage ingest is not up to date", "reasoningrec ingest -d d"),
        commands=("ingest", "validate"),
        after=_truncate_parquet,
    ),
    Case(
        "ml100k truncated samples.parquet, then validate samples",
        "ml100k",
        None,
        ("upstream stage prepare is not up to date", "reasoningrec prepare -d d"),
        commands=("ingest", "validate", "prepare", "validate-samples"),
        after=lambda r, w: _truncate_parquet(r, w, "samples.parquet"),
    ),
    # ... and read anyway (--allow-stale), the damage is a clear error naming the file.
    Case(
        "ml100k truncated interactions.parquet, then prepare anyway",
        "ml100k",
        None,
        ("interactions.parquet: not a readable Parquet file", "run `reasoningrec ingest -d d` again"),
        commands=("ingest", "validate", "prepare+stale"),
        after=_truncate_parquet,
    ),
    Case(
        "ml100k truncated interactions.parquet, then validate anyway",
        "ml100k",
        None,
        ("interactions.parquet: not a readable Parquet file", "reasoningrec ingest -d d"),
        commands=("ingest", "validate+stale"),
        after=_truncate_parquet,
    ),
    Case(
        "ml100k truncated samples.parquet, then validate samples anyway",
        "ml100k",
        None,
        ("samples.parquet: not a readable Parquet file", "reasoningrec prepare -d d"),
        commands=("ingest", "validate", "prepare", "validate-samples+stale"),
        after=lambda r, w: _truncate_parquet(r, w, "samples.parquet"),
    ),
    Case(
        "ml100k prepare without ingest",
        "ml100k",
        None,
        ("upstream stage ingest is not up to date", "never completed", "reasoningrec ingest -d d"),
        commands=("prepare",),
    ),
    Case(
        "ml100k prepare without ingest, anyway",
        "ml100k",
        None,
        ("interactions.parquet: not found", "reasoningrec ingest"),
        commands=("prepare+stale",),
    ),
    Case(
        "ml100k stale temporaries are cleared",
        "ml100k",
        _stale_temps,
        exit_code=0,
        commands=("ingest", "validate"),
        rows=ML100K_ROWS,
        check=_no_temps_left,
    ),
    # --- MovieLens 1M -----------------------------------------------------------------------------
    Case("ml1m clean", "ml1m", None, exit_code=0, rows=ML1M_ROWS),
    Case(
        "ml1m truncated gzip",
        "ml1m",
        lambda r: (p := r / "ml1m" / "ratings_no_timestamp.dat.gz").write_bytes(p.read_bytes()[:1_500_000]),
        ("ratings_no_timestamp.dat.gz: gzip stream is truncated or corrupt",),
    ),
    Case(
        "ml1m first 100k ratings, README present",
        "ml1m",
        lambda r: _ml1m_head(r, 100_000),
        ("100,000 ratings read", "README declares 1,000,209"),
    ),
    Case(
        "ml1m first 100k ratings, no README",
        "ml1m",
        lambda r: (_ml1m_head(r, 100_000), (r / "ml1m" / "README").unlink()),
        exit_code=0,
        rows=100_000,
    ),
    Case(
        "ml1m single colon separator",
        "ml1m",
        lambda r: (
            p := r / "ml1m" / "ratings_no_timestamp.dat.gz",
            _regzip(p, _gunzip(p).replace(b"1::661::3", b"1:661::3", 1)),
        ),
        ("ratings_no_timestamp.dat.gz, line 2", "expected 3 fields separated by '::'"),
    ),
    Case(
        "ml1m movies.dat with BOM",
        "ml1m",
        lambda r: (p := r / "ml1m" / "movies.dat").write_bytes(b"\xef\xbb\xbf" + p.read_bytes()),
        exit_code=0,
        rows=ML1M_ROWS,
    ),
    Case(
        "ml1m movies.dat latin-1 read as utf-8",
        "ml1m",
        None,
        ("movies.dat, line", "not valid utf-8", "datasets.d.encoding"),
        dataset={"encoding": "utf-8"},
    ),
    Case(
        "ml1m users.dat CRLF",
        "ml1m",
        lambda r: (p := r / "ml1m" / "users.dat").write_bytes(p.read_bytes().replace(b"\n", b"\r\n")),
        exit_code=0,
        rows=ML1M_ROWS,
    ),
    # --- Amazon 2018 ------------------------------------------------------------------------------
    Case("amazon clean", "amazon", None, exit_code=0, rows=BEAUTY_ROWS),
    Case(
        "amazon BOM",
        "amazon",
        lambda r: _regzip(az(r), b"\xef\xbb\xbf" + _gunzip(az(r))),
        exit_code=0,
        rows=BEAUTY_ROWS,
    ),
    Case(
        "amazon CRLF",
        "amazon",
        lambda r: _regzip(az(r), _gunzip(az(r)).replace(b"\n", b"\r\n")),
        exit_code=0,
        rows=BEAUTY_ROWS,
    ),
    Case(
        "amazon latin-1 review, utf-8 declared",
        "amazon",
        _latin1_review,
        ("r.json.gz, line 10", "byte 0xe9 at byte offset", "not valid utf-8"),
    ),
    Case(
        "amazon latin-1 review, latin-1 declared",
        "amazon",
        _latin1_review,
        exit_code=0,
        rows=BEAUTY_ROWS,
        dataset={"encoding": "latin-1"},
    ),
    Case(
        "amazon cut mid-line",
        "amazon",
        lambda r: _regzip(az(r), _gunzip(az(r))[:-40]),
        ("line 5269", "not valid JSON", "cut short"),
    ),
    Case(
        "amazon truncated gzip",
        "amazon",
        lambda r: az(r).write_bytes(az(r).read_bytes()[:300_000]),
        ("gzip stream is truncated or corrupt",),
    ),
    Case(
        "amazon invalid JSON line",
        "amazon",
        lambda r: _regzip(az(r), _gunzip(az(r)).replace(b'{"overall"', b"{overall", 1)),
        ("r.json.gz, line 1", "not valid JSON"),
    ),
    Case(
        "amazon array line",
        "amazon",
        lambda r: _regzip(az(r), b"[1, 2]\n" + _gunzip(az(r))),
        ("line 1", "expected one JSON object per line"),
    ),
    Case(
        "amazon missing reviewerID",
        "amazon",
        _amazon_line(99, reviewerID=None),
        ("line 100, field 'reviewerID'", "required field is missing"),
    ),
    Case(
        "amazon rating 'five'",
        "amazon",
        _amazon_line(99, overall="five"),
        ("line 100, field 'overall'", "expected a number, found 'five'"),
    ),
    Case(
        "amazon rating 0",
        "amazon",
        _amazon_line(99, overall=0),
        ("line 100, field 'overall'", "value 0 is outside the allowed range [1, 5]"),
    ),
    Case("amazon rating as a string", "amazon", _amazon_line(99, overall="4.0"), exit_code=0, rows=BEAUTY_ROWS),
    Case(
        "amazon rating true",
        "amazon",
        _amazon_line(99, overall=True),
        ("line 100, field 'overall'", "expected a number, found True"),
    ),
    Case(
        "amazon time 'soon'",
        "amazon",
        _amazon_line(4000, unixReviewTime="soon"),
        ("line 4001, field 'unixReviewTime'", "expected an integer, found 'soon'"),
    ),
    Case(
        "amazon time as an integral float",
        "amazon",
        _amazon_line(4000, unixReviewTime=1.4e9),
        exit_code=0,
        rows=BEAUTY_ROWS,
    ),
    Case(
        "amazon reviewerID with spaces",
        "amazon",
        _amazon_line(7, reviewerID=" A3CIUOJXQ5VDQ2 "),
        exit_code=0,
        rows=BEAUTY_ROWS,
        check=_assert_ids_stripped,
    ),
    Case("amazon empty file", "amazon", lambda r: _regzip(az(r), b""), ("r.json.gz: file is empty",)),
    Case(
        "amazon blank lines",
        "amazon",
        lambda r: _regzip(az(r), _gunzip(az(r)).replace(b"}\n", b"}\n\n  \n", 50)),
        exit_code=0,
        rows=BEAUTY_ROWS,
    ),
    Case(
        "amazon not JSON at all", "amazon", lambda r: _regzip(az(r), b"user,item\n1,2\n"), ("line 1", "not valid JSON")
    ),
    Case(
        "amazon bad metadata line",
        "amazon",
        lambda r: (r / "meta.json").write_text('{"asin": "B0000530HU"}\n{nope\n'),
        ("meta.json, line 2", "not valid JSON"),
        dataset={"meta_path": "meta.json"},
    ),
    Case(
        "amazon prepare after ingest",
        "amazon",
        None,
        exit_code=0,
        commands=("ingest", "validate", "prepare"),
        rows=BEAUTY_ROWS,
        sections={"validate": {"allow_duplicates": ["d"]}},
    ),
    # --- the paper authors' files ---------------------------------------------------------------------
    Case("paper clean", "paper", None, exit_code=0, rows=PAPER_ROWS),
    Case(
        "paper BOM header",
        "paper",
        lambda r: pb(r).write_bytes(b"\xef\xbb\xbf" + pb(r).read_bytes()),
        exit_code=0,
        rows=PAPER_ROWS,
        check=_assert_bom,
    ),
    Case(
        "paper CRLF",
        "paper",
        lambda r: pb(r).write_bytes(pb(r).read_bytes().replace(b"\n", b"\r\n")),
        exit_code=0,
        rows=PAPER_ROWS,
        check=_assert_crlf,
    ),
    Case(
        "paper columns in another order",
        "paper",
        lambda r: _write_lines(pb(r), [b",".join(x.split(b",")[::-1]) for x in _lines(pb(r))]),
        exit_code=0,
        rows=PAPER_ROWS,
    ),
    Case(
        "paper missing column",
        "paper",
        lambda r: _write_lines(pb(r), [b",".join(x.split(b",")[:3]) for x in _lines(pb(r))]),
        ("ratings.csv, line 1, field 'timestamp'", "missing column"),
    ),
    Case(
        "paper id not an integer",
        "paper",
        lambda r: _edit(pb(r), 3, lambda x: _field(x, 1, b"u7", b",")),
        ("ratings.csv, line 4, field 'user'", "expected an integer, found 'u7'"),
    ),
    Case(
        "paper item information not JSON",
        "paper",
        lambda r: pb(r, "processed_item_information.json").write_text('{"0": {"title": "x"},\n"1": oops}'),
        ("processed_item_information.json, line 2", "not valid JSON"),
    ),
    Case(
        "paper item information is a list",
        "paper",
        lambda r: pb(r, "processed_item_information.json").write_text("[1, 2]"),
        ("processed_item_information.json", "expected an object mapping item id"),
    ),
    Case(
        "paper item information latin-1",
        "paper",
        lambda r: pb(r, "processed_item_information.json").write_bytes(b'{"0": {"title": "caf\xe9"}}'),
        ("processed_item_information.json, line 1", "byte 0xe9 at byte offset 20"),
    ),
    # --- generic table ----------------------------------------------------------------------------
    Case("table clean", "table", None, exit_code=0, rows=TABLE_ROWS),
    Case(
        "table BOM header",
        "table",
        lambda r: tb(r).write_bytes(b"\xef\xbb\xbf" + tb(r).read_bytes()),
        exit_code=0,
        rows=TABLE_ROWS,
        check=_assert_bom,
    ),
    Case(
        "table CRLF",
        "table",
        lambda r: tb(r).write_bytes(tb(r).read_bytes().replace(b"\n", b"\r\n")),
        exit_code=0,
        rows=TABLE_ROWS,
        check=_assert_crlf,
    ),
    Case(
        "table latin-1 review, utf-8 declared",
        "table",
        lambda r: tb(r).write_bytes(tb(r).read_bytes().replace(b"Toy Story", b"Toy Stor\xe9", 1)),
        ("t.csv, line", "byte 0xe9 at byte offset", "not valid utf-8", "datasets.d.encoding"),
    ),
    Case(
        "table cp1252 declared",
        "table",
        lambda r: tb(r).write_bytes(tb(r).read_bytes().replace(b"Toy Story", b"Toy Story \x93the first\x94", 1)),
        exit_code=0,
        rows=TABLE_ROWS,
        dataset={"encoding": "cp1252"},
    ),
    Case(
        "table missing column",
        "table",
        lambda r: tb(r).write_bytes(tb(r).read_bytes().replace(b"rating", b"stars", 1)),
        ("t.csv, line 1, field 'rating'", "missing column", "datasets.d.columns.rating"),
    ),
    Case(
        "table column mapped",
        "table",
        lambda r: tb(r).write_bytes(tb(r).read_bytes().replace(b"rating", b"stars", 1)),
        exit_code=0,
        rows=TABLE_ROWS,
        dataset={"columns": {"rating": "stars"}},
    ),
    Case(
        "table duplicate header",
        "table",
        lambda r: tb(r).write_bytes(tb(r).read_bytes().replace(b"review", b"rating", 1)),
        ("t.csv, line 1", "duplicate column name(s) ['rating']"),
    ),
    Case(
        "table rating 'five'",
        "table",
        lambda r: _edit(tb(r), 20, lambda x: _field(x, 2, b"five", b",")),
        ("t.csv, line 21, field 'rating'", "expected a number, found 'five'"),
    ),
    Case(
        "table empty rating",
        "table",
        lambda r: _edit(tb(r), 20, lambda x: _field(x, 2, b"", b",")),
        ("line 21, field 'rating'", "expected a number, found ''"),
    ),
    Case(
        "table ISO timestamps",
        "table",
        lambda r: _write_lines(
            tb(r), [_lines(tb(r))[0]] + [_field(x, 3, b"2001-02-03T04:05:06Z", b",") for x in _lines(tb(r))[1:]]
        ),
        exit_code=0,
        rows=TABLE_ROWS,
    ),
    Case(
        "table mixed Unix and ISO timestamps",
        "table",
        lambda r: _edit(tb(r), 3, lambda x: _field(x, 3, b"1998-01-01", b",")),
        exit_code=0,
        rows=TABLE_ROWS,
    ),
    Case(
        "table timestamp 'soon'",
        "table",
        lambda r: _edit(tb(r), 2999, lambda x: _field(x, 3, b"soon", b",")),
        ("line 3000, field 'timestamp'", "expected Unix seconds or an ISO-8601 date, found 'soon'"),
    ),
    Case(
        "table multi-line review, then a bad rating",
        "table",
        lambda r: (
            _edit(tb(r), 5, lambda x: x.replace(b'"', b'"line one\nline two ', 1)),
            _edit(tb(r), 11, lambda x: _field(x, 2, b"x", b",")),
        ),
        ("t.csv, line 12, field 'rating'",),
    ),
    Case("table stray quote", "table", lambda r: _edit(tb(r), 30, lambda x: x + b',"extra'), ("t.csv, line 31",)),
    Case(
        "table cut last line",
        "table",
        lambda r: tb(r).write_bytes(tb(r).read_bytes()[:-9]),
        ("line 3001", "no line ending", "cut short"),
    ),
    Case(
        "table header only",
        "table",
        lambda r: tb(r).write_bytes(_lines(tb(r))[0] + b"\n"),
        ("t.csv, line 1", "file has a header but no data rows"),
    ),
    Case("table empty file", "table", lambda r: tb(r).write_bytes(b""), ("t.csv: file is empty",)),
    Case(
        "table ids with spaces",
        "table",
        lambda r: _write_lines(tb(r), [_lines(tb(r))[0]] + [x.replace(b",", b" ,", 1) for x in _lines(tb(r))[1:]]),
        exit_code=0,
        rows=TABLE_ROWS,
        check=_assert_ids_stripped,
    ),
    Case(
        "table empty id",
        "table",
        lambda r: _edit(tb(r), 8, lambda x: _field(x, 1, b"", b",")),
        ("t.csv, line 9, field 'item'", "empty id"),
    ),
    Case(
        "table wrong file kind",
        "table",
        None,
        ("params.yaml: datasets.d.path", "the table source reads"),
        dataset={"path": "tb/t.txt"},
    ),
    Case(
        "table unknown columns key",
        "table",
        None,
        ("datasets.d.columns", "unknown key(s) ['usr']"),
        dataset={"columns": {"usr": "user"}},
    ),
    Case(
        "table timestamp 0 passes ingest, fails validation at its record",
        "table",
        lambda r: _edit(tb(r), 4, lambda x: _field(x, 3, b"0", b",")),
        ("record 3: user_id=",),
        commands=("ingest", "validate"),
    ),
    Case(
        "table duplicate rows fail validation",
        "table",
        lambda r: _write_lines(tb(r), _lines(tb(r)) + _lines(tb(r))[1:3]),
        ("expect_compound_columns_to_be_unique", "4 of 3,002 rows", "record 0: user_id="),
        commands=("ingest", "validate"),
    ),
    Case(
        "table prepare after ingest",
        "table",
        None,
        exit_code=0,
        commands=("ingest", "validate", "prepare"),
        rows=TABLE_ROWS,
    ),
    Case("parquet table clean", "parquet", None, exit_code=0, rows=TABLE_ROWS),
    Case(
        "parquet table truncated",
        "parquet",
        lambda r: (p := r / "tb" / "t.parquet").write_bytes(p.read_bytes()[:-100]),
        ("t.parquet: not a readable Parquet file",),
    ),
    Case(
        "parquet table null rating",
        "parquet",
        lambda r: (
            __import__("pandas")
            .read_parquet(p := r / "tb" / "t.parquet")
            .assign(rating=lambda f: f["rating"].where(f.index != 17))
            .to_parquet(p, index=False)
        ),
        ("t.parquet, record 17, field 'rating'", "expected a number, found null"),
    ),
    Case("gzipped TSV table", "tsv", None, exit_code=0, rows=TABLE_ROWS),
]


# --- running a case ----------------------------------------------------------------------------


@dataclass
class Outcome:
    exit_code: int
    out: str
    err: str
    traceback: str | None
    changed: list[str]  # stage outputs created or changed by the judged command (when it failed)
    temps: list[str]
    rows: int | None
    work: Path


def _snapshot(work: Path) -> dict[str, tuple[int, int]]:
    if not work.exists():
        return {}
    return {
        str(p.relative_to(work)): (p.stat().st_mtime_ns, p.stat().st_size)
        for p in work.rglob("*")
        if p.is_file() and p.suffix in OUTPUT_SUFFIXES and "validation" not in p.parts
    }


def _cli(argv: list[str]) -> tuple[int, str, str, str | None]:
    from reasoningrec.cli import main

    out, err = io.StringIO(), io.StringIO()
    code, trace = 0, None
    saved = sys.argv
    sys.argv = ["reasoningrec", *argv]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except Exception:  # what a user would see as a traceback
        code, trace = 1, traceback.format_exc()
    finally:
        sys.argv = saved
    return code, out.getvalue(), err.getvalue(), trace


def _argv(command: str, params: Path) -> list[str]:
    """The CLI line of a case's command; ``+stale`` adds ``--allow-stale``."""
    command, _, stale = command.partition("+")
    extra = ["--allow-stale"] if stale == "stale" else []
    if command == "validate":
        return ["validate", "-d", "d", "--stage", "interactions", "--params", str(params), *extra]
    if command == "validate-samples":
        return ["validate", "-d", "d", "--stage", "samples", "--params", str(params), *extra]
    return [command, "-d", "d", "--params", str(params), *extra]


def run_case(case: Case, root: Path) -> Outcome:
    raw, work = root / "raw", root / "work" / "d"
    raw.mkdir(parents=True)
    _build(case.kind, raw)
    if case.damage is not None:
        case.damage(raw)
    settings = {
        "paths": {"data_dir": str(raw), "work_dir": str(root / "work")},
        "datasets": {"d": {**DATASETS[case.kind], **case.dataset}},
        "validate": {"data_docs": False},
    }
    for key, value in case.sections.items():
        settings[key] = {**settings.get(key, {}), **value}
    params = root / "params.yaml"
    params.write_text(yaml.safe_dump(settings))
    saved = os.environ.pop(DATA_DIR_ENV, None)
    try:
        for command in case.commands[:-1]:
            code, out, err, trace = _cli(_argv(command, params))
            assert code == 0 and trace is None, f"setup command {command} failed: {err}{trace}"
        if case.after is not None:
            case.after(raw, work)
        before = _snapshot(work)
        code, out, err, trace = _cli(_argv(case.commands[-1], params))
    finally:
        if saved is not None:
            os.environ[DATA_DIR_ENV] = saved
    after = _snapshot(work)
    changed = sorted(name for name in after if before.get(name) != after[name]) if code else []
    temps = [str(p) for p in work.rglob(".*.tmp")] if work.exists() else []
    rows = (
        json.loads((work / "ingest.json").read_text())["rows"]
        if code == 0 and (work / "ingest.json").is_file()
        else None
    )
    return Outcome(code, out, err, trace, changed, temps, rows, work)


_RESULTS: dict[str, Outcome] = {}


@pytest.fixture(scope="module")
def outcome(tmp_path_factory):
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA}")

    def get(case: Case) -> Outcome:
        if case.name not in _RESULTS:
            _RESULTS[case.name] = run_case(case, tmp_path_factory.mktemp("fault"))
        return _RESULTS[case.name]

    return get


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case(case: Case, outcome):
    result = outcome(case)
    assert result.traceback is None, result.traceback
    assert result.exit_code == case.exit_code, (result.out, result.err)
    message = result.err + result.out
    for fragment in case.fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    if case.exit_code:
        assert result.err.startswith("error: ") and "Traceback" not in result.err
        assert result.changed == [], f"a failed command wrote {result.changed}"
    assert result.temps == []
    if case.rows is not None:
        assert result.rows == case.rows
    if case.check is not None:
        case.check(result.work)


def test_tally(outcome):
    """Every case ends in a clear error or as documented: the counts of the fault-injection sweep."""
    results = {case.name: (case, outcome(case)) for case in CASES}
    tracebacks = [name for name, (_, r) in results.items() if r.traceback]
    clear = [
        name
        for name, (c, r) in results.items()
        if c.exit_code
        and r.exit_code == c.exit_code
        and r.err.startswith("error: ")
        and all(f in r.err + r.out for f in c.fragments)
    ]
    handled = [name for name, (c, r) in results.items() if not c.exit_code and r.exit_code == 0]
    partial = [name for name, (_, r) in results.items() if r.changed or r.temps]
    lost = sum(c.rows - (r.rows or 0) for c, r in results.values() if c.rows is not None and r.exit_code == 0)
    tally = {
        "cases": len(CASES),
        "clear_errors": len(clear),
        "handled_as_documented": len(handled),
        "tracebacks": len(tracebacks),
        "partial_outputs": len(partial),
        "rows_lost": lost,
    }
    print("fault injection:", json.dumps(tally))
    assert tally["tracebacks"] == 0 and tally["partial_outputs"] == 0 and tally["rows_lost"] == 0
    assert tally["clear_errors"] + tally["handled_as_documented"] == len(CASES)
