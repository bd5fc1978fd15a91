"""Fan a text-generation stage out over item/user shards and merge the pieces back.

A shard is a folder holding the stage's inputs restricted to a stable subset of keys (items for
``describe``, users for ``profile``/``reason``); the stage runs on it unchanged, through its
``out_dir`` argument. Assignment hashes the key, so the same data always gives the same shards and
every shard's completion record stays valid across re-runs.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Mapping, Sequence
from numbers import Number
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from reasoningrec.errors import ConfigError, DataError
from reasoningrec.io import read_json, write_json, write_parquet
from reasoningrec.pipeline import Stage

SHARDS_DIR = ".shards"


def shard_of(key: str, shards: int) -> int:
    """Stable shard number of one key (the same on every machine and Python run)."""
    return int(hashlib.sha1(str(key).encode()).hexdigest()[:8], 16) % shards


def shard_dirs(work_dir: Path, stage: str, shards: int) -> list[Path]:
    """The folders of a stage's shards: ``<work_dir>/.shards/<stage>/<i>-of-<n>``."""
    return [work_dir / SHARDS_DIR / stage / f"{i}-of-{shards}" for i in range(shards)]


def split_frame(frame: pd.DataFrame, key: str, shards: int) -> list[pd.DataFrame]:
    """Rows of ``frame`` per shard of their ``key`` value (order kept within each shard)."""
    assignment = frame[key].astype(str).map(lambda k: shard_of(k, shards))
    return [frame[assignment == i].reset_index(drop=True) for i in range(shards)]


def _link_or_copy(source: Path, target: Path) -> None:
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def split_inputs(work_dir: Path, spec: Stage, shards: int) -> list[Path]:
    """Write each shard's inputs: tables keyed by the shard column are split, other files linked.

    Every top-level file of the work dir travels (a stage may read more than its declared inputs),
    except the stage's own outputs, which each shard writes itself.
    """
    if spec.shard_key is None:
        raise ConfigError(f"stage {spec.name!r} cannot be sharded (no shard key)")
    if shards < 1:
        raise ConfigError(f"shards must be >= 1, got {shards}")
    missing = [name for name in spec.inputs if not (work_dir / name).exists()]
    if missing:
        raise DataError(work_dir / missing[0], f"input of stage {spec.name!r} not found: run the earlier stages first")
    folders = shard_dirs(work_dir, spec.name, shards)
    sources = sorted(p for p in work_dir.iterdir() if p.is_file() and p.name not in spec.outputs)
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
        # A shard keeps its earlier outputs (its completion record stays valid) but no stale inputs.
        for old in folder.iterdir():
            if old.is_file() and old.name not in spec.outputs and not (work_dir / old.name).exists():
                old.unlink()
    for source in sources:
        if source.suffix == ".parquet" and spec.shard_key in pq.read_schema(source).names:
            for folder, part in zip(folders, split_frame(pd.read_parquet(source), spec.shard_key, shards), strict=True):
                write_parquet(folder / source.name, part)
        else:
            for folder in folders:
                _link_or_copy(source, folder / source.name)
    return folders


def merge_summaries(summaries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One summary from the shards': counts summed, rates averaged, equal values kept, others listed.

    Summed: counts, tokens, seconds (total shard time) and throughputs (shards run side by side).
    """
    merged: dict[str, Any] = {}
    keys = dict.fromkeys(k for s in summaries for k in s)
    for key in keys:
        values = [s[key] for s in summaries if key in s]
        if all(isinstance(v, Number) and not isinstance(v, bool) for v in values):
            fraction = key.endswith(("_rate", "ratio", "fraction", "share")) or key.startswith(("mean", "avg"))
            merged[key] = sum(values) / len(values) if fraction else sum(values)
        elif all(v == values[0] for v in values):
            merged[key] = values[0]
        elif all(isinstance(v, Mapping) for v in values):
            merged[key] = merge_summaries(values)
        else:
            merged[key] = values
    merged["shards"] = len(summaries)
    return merged


def merge_outputs(work_dir: Path, spec: Stage, folders: Sequence[Path]) -> dict[str, Any]:
    """Concatenate the shards' tables into the work dir (in the key order of the unsplit input)."""
    key = spec.shard_key
    order: dict[str, int] = {}
    for name in spec.inputs:
        source = work_dir / name
        if source.suffix == ".parquet" and key in pq.read_schema(source).names:
            keys = pd.read_parquet(source, columns=[key])[key].astype(str)
            order = {k: i for i, k in enumerate(dict.fromkeys(keys))}
            break
    for name in spec.outputs:
        if not name.endswith(".parquet"):
            continue
        parts = []
        for folder in folders:
            path = folder / name
            if not path.exists():
                raise DataError(path, f"shard output missing: stage {spec.name!r} did not write {name}")
            parts.append(pd.read_parquet(path))
        frame = pd.concat(parts, ignore_index=True)
        if key in frame.columns and order:
            rank = frame[key].astype(str).map(order).fillna(len(order))
            frame = frame.iloc[rank.argsort(kind="stable")].reset_index(drop=True)
        write_parquet(work_dir / name, frame)
    summaries = [read_json(f / f"{spec.name}.json") for f in folders if (f / f"{spec.name}.json").exists()]
    summary = merge_summaries(summaries)
    write_json(work_dir / f"{spec.name}.json", summary)
    return summary


def endpoint_overrides(base_url: str | Sequence[str], shards: int) -> list[dict[str, Any]]:
    """Per-shard settings override giving shard ``i`` the server ``i mod (number of servers)``.

    ``base_url`` is ``llm.base_url`` as configured: one URL, a comma-separated string or a list.
    """
    from reasoningrec.llm.openai_http import parse_base_urls

    try:
        urls = parse_base_urls(base_url)
    except ValueError as exc:
        raise ConfigError(f"llm.base_url: {exc}") from None
    return [{"llm": {"base_url": urls[i % len(urls)]}} for i in range(shards)]
