"""Source readers keyed by ``DatasetConfig.source``; each returns a :class:`SourceData`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd


@dataclass
class SourceData:
    """What one reader produced: normalised tables plus provenance for ``ingest.json``."""

    interactions: pd.DataFrame
    items: pd.DataFrame
    files: list[Path]
    time_source: str = "timestamp"  # or "file_order"
    notes: list[str] = field(default_factory=list)
    extra_tables: dict[str, pd.DataFrame] = field(default_factory=dict)


# reader(raw_path, dataset_config, params) -> SourceData
Reader = Callable[..., SourceData]


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
