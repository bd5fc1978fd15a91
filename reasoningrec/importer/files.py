"""A texts folder: its file names, where it is, and its JSON files read with errors naming the file."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from reasoningrec.errors import ConfigError, DataError

SPLITS = ("train", "valid", "test")
ITEM_FILE = "processed_item_information.json"
PROFILE_FILE = "user_profile_summary.json"
MOVIE_SUMMARY_FILE = "movie_summary_25_words.csv"
SFT_FILE = "sft_{split}.json.gz"


def texts_dir(params, dataset: str) -> Path:
    """Folder holding a dataset's pre-generated texts (``texts_path``, else ``path`` for paper data)."""
    cfg = params.dataset(dataset)
    relative = cfg.texts_path or (cfg.path if cfg.source == "paper" else None)
    if relative is None:
        raise ConfigError(f"dataset {dataset!r}: no texts to import (set datasets.{dataset}.texts_path in params.yaml)")
    folder = params.data_dir / relative
    if not folder.is_dir():
        raise DataError(folder, "texts folder not found (check paths.data_dir / $REASONINGREC_DATA_DIR)")
    return folder


def read_records(path: Path) -> list[dict]:
    """Read a (gzipped) JSON list of records, with errors naming the file."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(path, f"not a readable JSON file: {exc}") from None
    if not isinstance(data, list):
        raise DataError(path, f"expected a JSON list of records, got {type(data).__name__}")
    for row, record in enumerate(data):
        if not isinstance(record, dict):
            raise DataError(path, "expected an object {instruction, input, output}", row=row)
    return data


def read_json_map(path: Path) -> dict:
    """Read a JSON object keyed by id (items, profiles), with errors naming the file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(path, f"not a readable JSON file: {exc}") from None
    if not isinstance(data, dict):
        raise DataError(path, f"expected a JSON object keyed by id, got {type(data).__name__}")
    return data
