"""Ingest stage: raw source files -> ``interactions.parquet`` + ``items.parquet`` + ``ingest.json``.

The reader's chunks stream through the contract checks into a Parquet writer, so a source larger
than memory (a full Amazon category with its reviews) never has to be held at once. Every check
runs before the first output replaces an old one: a failed ingest writes nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from reasoningrec.config import DATA_DIR_ENV, TABLE_SUFFIXES
from reasoningrec.data.contract import WRITE_SCHEMA, Totals, check_chunk
from reasoningrec.data.readers import rating_range
from reasoningrec.data.schema import items_frame, write_contract_table
from reasoningrec.errors import ConfigError, DataError
from reasoningrec.io import atomic_path, file_sha256, remove_stale_temps, write_parquet
from reasoningrec.summary import Summary

OUTPUTS = ("interactions.parquet", "items.parquet", "users.parquet", "ingest.json")


class IngestSummary(Summary):
    """``ingest.json``: what was read (counts, ratings, time range, id fixes) and from which files."""

    dataset: str
    source: str
    rows: int
    users: int
    items: int
    item_rows: int
    items_with_metadata_title: int
    rating_histogram: dict[str, int]
    reviews: int
    timestamp_range: list[int | None]
    time_source: str
    ids_stripped: dict[str, int]
    ids_merged: dict[str, int]
    declared_counts: list[str]
    source_files: list[dict[str, Any]]  # path, bytes, sha256 and the text facts of each raw file
    notes: list[str]


def raw_path(params, dataset: str) -> Path:
    """Where a dataset's raw file or folder lives: ``params.data_dir / datasets.<name>.path``."""
    return params.data_dir / params.dataset(dataset).path


def check_settings(params, dataset: str) -> None:
    """Setting errors that need no data: reported before any file is opened."""
    config = params.dataset(dataset)
    if config.source == "table" and not config.path.lower().endswith(TABLE_SUFFIXES):
        raise ConfigError(
            f"params.yaml: datasets.{dataset}.path ({config.path!r}): the table source reads "
            f"{', '.join(TABLE_SUFFIXES)} files"
        )
    if config.meta_path and config.source not in ("table", "amazon2018", "amazon2023"):
        raise ConfigError(
            f"params.yaml: datasets.{dataset}.meta_path: the {config.source} source has its own item "
            "files and reads no meta_path; remove the key"
        )


def _source_file(path: Path, facts: dict | None) -> dict:
    from reasoningrec.data.text import file_digest

    facts = dict(facts or {})
    facts["sha256"] = file_digest(facts.get("sha256")) or file_sha256(path)
    return {"path": str(path), "bytes": path.stat().st_size, **facts}


def _check_declared(data, totals: Totals, source: Path) -> list[str]:
    """Compare the counts a source declares (ML-100K ``u.info``, ML-1M README) with what was read."""
    found = {"ratings": totals.rows, "users": len(totals.distinct("user_id")), "items": len(totals.distinct("item_id"))}
    checked = []
    for claim in sorted(data.declared, key=lambda c: ("ratings", "users", "items").index(c.what)):
        if found[claim.what] != claim.count:
            raise DataError(
                source,
                f"{found[claim.what]:,} {claim.what} read, but {claim.path.name} declares {claim.count:,}: the file is "
                f"incomplete (cut short?) or {claim.path.name} belongs to another copy; fetch the dataset again, or "
                f"delete {claim.path.name} to skip this check",
            )
        checked.append(f"{claim.what} = {claim.count:,} ({claim.path.name})")
    return checked


def complete_items(data, rated: pa.Array) -> tuple[pd.DataFrame, int]:
    """The item table: metadata rows (of rated items only, where the source says so), plus a row
    with the id as title for every rated item the metadata lacks; returns it and how many were added."""
    items = data.items
    rated_ids = np.asarray(rated.to_numpy(zero_copy_only=False), dtype=object)
    if data.items_rated_only and len(items):
        items = items[items["item_id"].isin(set(rated_ids))].reset_index(drop=True)
    known = set(items["item_id"]) if len(items) else set()
    missing = [item for item in rated_ids if item not in known]
    if not missing:
        return items, 0
    extra = items_frame(pd.DataFrame({"item_id": missing, "title": missing}))
    return pd.concat([items, extra], ignore_index=True) if len(items) else extra, len(missing)


def run_ingest(params, dataset: str, out_dir: Path | None = None) -> IngestSummary:
    """Read one dataset's raw files, check them against the contract, write the outputs and the summary."""
    import pyarrow.parquet as pq

    from reasoningrec.data.sources import ReadContext, registry

    config = params.dataset(dataset)
    check_settings(params, dataset)
    path = raw_path(params, dataset)
    if not path.exists():
        raise DataError(
            path,
            f"raw data for dataset {dataset!r} not found. Point ${DATA_DIR_ENV} (now: {params.data_dir}) at "
            f"the folder that holds {config.path!r}, or fetch it with `reasoningrec download --dataset {dataset}`",
        )
    out = Path(out_dir) if out_dir is not None else params.work_dir(dataset)
    remove_stale_temps(out, OUTPUTS)
    data = registry()[config.source](path, ReadContext(dataset, config, params))
    low, high = rating_range(params)
    totals = Totals()
    with atomic_path(out / "interactions.parquet") as tmp:
        # String statistics cost as much as the rest of the write and nothing reads them; unique
        # timestamps only waste a dictionary attempt.
        with pq.ParquetWriter(
            tmp,
            WRITE_SCHEMA,
            store_schema=False,
            use_dictionary=["user_id", "item_id", "rating"],
            write_statistics=["rating", "timestamp", "review"],
        ) as writer:
            for chunk in data.chunks:
                table, fixes = check_chunk(chunk, low, high)
                totals.add(table, fixes)
                writer.write_table(table)
        if totals.rows == 0:
            raise DataError(path, "no interactions found")
        declared = _check_declared(data, totals, path)
        items, added = complete_items(data, totals.distinct("item_id"))
    notes = list(data.notes)
    if added and data.missing_items_note:
        notes.append(data.missing_items_note.format(n=added))
    for column in ("user_id", "item_id"):
        if totals.stripped[column]:
            notes.append(
                f"{totals.stripped[column]:,} {column} values had surrounding whitespace, stripped; "
                f"{totals.merged(column):,} distinct ids merged with another as a result"
            )
    summary = IngestSummary(
        dataset=dataset,
        source=config.source,
        rows=totals.rows,
        users=len(totals.distinct("user_id")),
        items=len(totals.distinct("item_id")),
        item_rows=int(len(items)),
        items_with_metadata_title=int((items["title"] != items["item_id"]).sum()),
        rating_histogram=totals.histogram(),
        reviews=totals.reviews,
        timestamp_range=[totals.time_min, totals.time_max],
        time_source=data.time_source,
        ids_stripped=dict(totals.stripped),
        ids_merged={column: totals.merged(column) for column in ("user_id", "item_id")},
        declared_counts=declared,
        source_files=[_source_file(p, data.text_facts.get(str(p))) for p in data.files],
        notes=notes,
    )
    write_contract_table(out / "items.parquet", items, "items")
    for name, frame in data.extra_tables.items():
        write_parquet(out / f"{name}.parquet", frame)
    summary.write(out / "ingest.json")
    return summary


def read_interactions(path: Path) -> pd.DataFrame:
    """Load an ``interactions.parquet`` written by :func:`run_ingest` as a pandas frame."""
    from reasoningrec.data.frames import read_table

    return read_table(
        path, ["user_id", "item_id", "rating", "timestamp", "review"], "run `reasoningrec ingest` for this dataset"
    ).to_pandas()
