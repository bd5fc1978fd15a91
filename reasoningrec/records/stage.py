"""The records stage (I/O): ``records.parquet`` + ``records.json`` from a dataset's work folder."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from reasoningrec.data.frames import read_frame
from reasoningrec.errors import DataError
from reasoningrec.models import load_tokenizer
from reasoningrec.records.assemble import build_records
from reasoningrec.records.prompt import variant_spec
from reasoningrec.summary import Summary


class RecordsSummary(Summary):
    """``records.json``: records per split and K-shot set (with their likes, of one variant), prompts
    shortened or still over-long per variant, the tokenizer and settings they were built with."""

    variants: list[str]
    splits: dict[str, dict[str, int]]  # split -> records, likes
    k_shots: dict[str, dict[str, int]]  # K -> records, likes (train)
    shortened: dict[str, int]  # per variant
    overlong: dict[str, int]  # per variant
    max_tokens: int
    excluded_without_reasoning: int
    test_without_reference: int
    rows: int
    reasoning_flagged_invalid: int
    dataset: str
    tokenizer: str
    base_model: str
    max_length: int
    seed: int


def _read(path: Path, required: bool, columns: Sequence[str]) -> pd.DataFrame | None:
    return read_frame(path, columns, "run the earlier pipeline stages", required=required)


def run_records(params, dataset: str, out_dir: str | Path | None = None, *, tokenizer=None) -> RecordsSummary:
    """Build ``records.parquet`` + ``records.json`` for one dataset from its work folder.

    Reads samples, items, and (where the configured variants need them) descriptions, profiles and
    reasoning. Returns the summary written to ``records.json``.
    """
    from reasoningrec.io import write_parquet

    cfg = params.records
    out_dir = Path(out_dir) if out_dir is not None else params.work_dir(dataset)
    needed = set().union(*(variant_spec(v).needs for v in cfg.variants))
    samples = _read(
        out_dir / "samples.parquet",
        True,
        ["user_id", "split", "target_item", "label", "history_items", "history_labels"],
    )
    items = _read(out_dir / "items.parquet", True, ["item_id", "title"])
    inputs = {
        "descriptions": _read(out_dir / "descriptions.parquet", "descriptions" in needed, ["item_id", "description"]),
        "profiles": _read(out_dir / "profiles.parquet", "profiles" in needed, ["user_id", "profile"]),
        "reasoning": _read(
            out_dir / "reasoning.parquet", "reasoning" in needed, ["user_id", "split", "label", "reasoning"]
        ),
    }
    tokenizer = tokenizer or load_tokenizer(params.train.base_model)
    records, summary = build_records(
        samples,
        items,
        tokenizer=tokenizer,
        domain=params.dataset(dataset).domain,
        variants=cfg.variants,
        k_shots=cfg.k_shots,
        valid_size=cfg.valid_size,
        max_length=cfg.max_length,
        seed=cfg.seed,
        **inputs,
    )
    summary = RecordsSummary(
        **summary,
        dataset=dataset,
        tokenizer=getattr(tokenizer, "name_or_path", ""),
        base_model=params.train.base_model,
        max_length=cfg.max_length,
        seed=cfg.seed,
    )
    write_parquet(out_dir / "records.parquet", records)
    summary.write(out_dir / "records.json")
    return summary


def read_records(path: str | Path, variant: str | None = None) -> pd.DataFrame:
    """Load ``records.parquet`` (optionally one variant), checking the columns training needs."""
    path = Path(path)
    frame = _read(path, True, ["user_id", "split", "label", "variant", "prompt_text", "completion_text"])
    if variant is not None:
        if variant not in set(frame["variant"]):
            raise DataError(
                path, f"no records of variant {variant!r} (has: {sorted(set(frame['variant']))})", field="variant"
            )
        frame = frame[frame["variant"] == variant].reset_index(drop=True)
    return frame
