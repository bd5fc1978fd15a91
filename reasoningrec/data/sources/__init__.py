"""Source readers keyed by ``DatasetConfig.source``; each returns a :class:`SourceData`.

A reader parses its files into typed :class:`Chunk` s (one for a file read whole, many for a large
JSON-lines file read block by block) and item metadata. The checks every source shares (ids,
rating range, timestamps) run in :mod:`reasoningrec.data.contract`, once, whatever the source.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa

from reasoningrec.data.readers import Where


@dataclass(frozen=True)
class ReadContext:
    """What a reader needs besides its path: the dataset's name and settings."""

    dataset: str
    config: object  # DatasetConfig
    params: object  # Params

    @property
    def encoding(self) -> str:
        return self.config.text_encoding()

    def setting(self, key: str) -> str:
        """The params.yaml key of one of this dataset's settings, for messages."""
        return f"datasets.{self.dataset}.{key}"


@dataclass
class Chunk:
    """Interactions parsed from one stretch of a file, typed but not yet checked.

    ``table`` has the contract's columns (``user_id``, ``item_id`` as strings or dictionary,
    ``rating`` float64, ``timestamp`` int64, ``review`` string or null); ``where`` places a record
    of it in the file, ``fields`` names each column as the file does (for messages).
    """

    table: pa.Table
    path: Path
    where: Where
    fields: dict[str, str]


@dataclass(frozen=True)
class Declared:
    """A count the source states about itself (e.g. ML-100K's ``u.info``), checked after reading."""

    path: Path
    what: str  # "ratings" | "users" | "items"
    count: int


@dataclass
class SourceData:
    """What one reader produced: chunks of interactions, item metadata, and provenance."""

    chunks: Iterable[Chunk]  # consumed once, in file order
    items: pd.DataFrame  # metadata rows (schema.items_frame); rated items it lacks are added at ingest
    files: list[Path]
    time_source: str = "timestamp"  # or "file_order"
    notes: list[str] = field(default_factory=list)
    extra_tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    # Only the metadata of rated items is kept (Amazon metadata covers a whole category).
    items_rated_only: bool = False
    missing_items_note: str = "{n} rated items have no metadata row: their id stands in for the title"
    declared: list[Declared] = field(default_factory=list)
    text_facts: dict[str, dict] = field(default_factory=dict)  # path -> encoding, bom, line endings


# reader(raw_path, context) -> SourceData
Reader = Callable[[Path, ReadContext], SourceData]


def registry() -> dict[str, Reader]:
    """Readers by source name (imported here so each module stays independent)."""
    from reasoningrec.data.sources import amazon, movielens, paper, table

    return {
        "movielens100k": movielens.read_ml100k,
        "movielens1m": movielens.read_ml1m,
        "amazon2018": amazon.read_amazon2018,
        "amazon2023": amazon.read_amazon2023,
        "paper": paper.read_paper,
        "table": table.read_table,
    }
