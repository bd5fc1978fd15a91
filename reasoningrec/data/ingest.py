"""Ingest stage: raw source files -> ``interactions.parquet`` + ``items.parquet`` + ``ingest.json``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from reasoningrec.config import DATA_DIR_ENV
from reasoningrec.data.schema import write_contract_table
from reasoningrec.errors import DataError
from reasoningrec.io import file_sha256, write_json, write_parquet


def raw_path(params, dataset: str) -> Path:
    """Where a dataset's raw file or folder lives: ``params.data_dir / datasets.<name>.path``."""
    return params.data_dir / params.dataset(dataset).path


def summarize(data, dataset: str, source: str) -> dict:
    """Counts and provenance of one ingested dataset (the ``ingest.json`` content)."""
    inter = data.interactions
    histogram = inter["rating"].value_counts().sort_index()
    return {
        "dataset": dataset,
        "source": source,
        "rows": int(len(inter)),
        "users": int(inter["user_id"].nunique()),
        "items": int(inter["item_id"].nunique()),
        "item_rows": int(len(data.items)),
        "items_with_metadata_title": int((data.items["title"] != data.items["item_id"]).sum()),
        "rating_histogram": {f"{k:g}": int(v) for k, v in histogram.items()},
        "reviews": int(inter["review"].notna().sum()),
        "timestamp_range": [int(inter["timestamp"].min()), int(inter["timestamp"].max())],
        "time_source": data.time_source,
        "source_files": [
            {"path": str(p), "bytes": p.stat().st_size, "sha256": file_sha256(p)} for p in data.files
        ],
        "notes": data.notes,
    }


def run_ingest(params, dataset: str, out_dir: Path | None = None) -> dict:
    """Read one dataset's raw files, normalise them to the contract, write outputs and the summary."""
    from reasoningrec.data.sources import registry

    config = params.dataset(dataset)
    path = raw_path(params, dataset)
    if not path.exists():
        raise DataError(
            path,
            f"raw data for dataset {dataset!r} not found. Point ${DATA_DIR_ENV} (now: {params.data_dir}) at "
            f"the folder that holds {config.path!r}, or fetch it with `reasoningrec download --dataset {dataset}`",
        )
    data = registry()[config.source](path, config, params)
    if data.interactions.empty:
        raise DataError(path, "no interactions found")
    summary = summarize(data, dataset, config.source)
    out = Path(out_dir) if out_dir is not None else params.work_dir(dataset)
    write_contract_table(out / "interactions.parquet", data.interactions, "interactions")
    write_contract_table(out / "items.parquet", data.items, "items")
    for name, frame in data.extra_tables.items():
        write_parquet(out / f"{name}.parquet", frame)
    write_json(out / "ingest.json", summary)
    return summary


def read_interactions(path: Path) -> pd.DataFrame:
    """Load an ``interactions.parquet`` written by :func:`run_ingest`."""
    if not Path(path).is_file():
        raise DataError(path, "not found: run `reasoningrec ingest` for this dataset first")
    return pd.read_parquet(path)
