"""The import stage: a dataset's pre-generated texts into descriptions, profiles and reasoning parquet files."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from reasoningrec.errors import DataError
from reasoningrec.importer.files import (
    ITEM_FILE,
    MOVIE_SUMMARY_FILE,
    PROFILE_FILE,
    SFT_FILE,
    SPLITS,
    read_json_map,
    read_records,
    texts_dir,
)
from reasoningrec.importer.frames import (
    EXAMPLES,
    IMPORTED_MODEL,
    SOURCE,
    descriptions_from_items,
    descriptions_from_movie_summaries,
    profiles_frame,
    reasoning_frame,
    text_summary,
)
from reasoningrec.importer.match import match_records, user_rank
from reasoningrec.importer.sft import parse_record
from reasoningrec.io import write_parquet
from reasoningrec.summary import Summary
from reasoningrec.synthesis.guards import count_problems

log = logging.getLogger(__name__)


def _titles(folder: Path, items_info: Mapping[str, Mapping], out_dir: Path) -> dict[str, str]:
    titles = {str(k): str(v.get("title") or "") for k, v in items_info.items() if isinstance(v, Mapping)}
    items_path = out_dir / "items.parquet"
    if items_path.exists():
        items = pd.read_parquet(items_path, columns=["item_id", "title"])
        for item_id, title in zip(items["item_id"].astype(str), items["title"], strict=True):
            titles.setdefault(item_id, "" if title is None else str(title))
    return titles


def import_reasoning(
    folder: Path, samples: pd.DataFrame, titles: Mapping[str, str], profiles: Mapping[str, str]
) -> tuple[pd.DataFrame, dict]:
    """Parse and match every ``sft_<split>.json.gz`` of ``folder``; returns the frame and a summary."""
    frames, summary = [], {}
    for split in SPLITS:
        path = folder / SFT_FILE.format(split=split)
        if not path.exists():
            continue
        records = [parse_record(r, i, path) for i, r in enumerate(read_records(path))]
        split_samples = samples[samples["split"] == split].reset_index(drop=True)
        matches = match_records(records, samples, split, titles, profiles)
        frame = reasoning_frame(split, records, matches, split_samples)
        frames.append(frame)
        unmatched = sorted(set(range(len(records))) - {m.record for m in matches})
        summary[split] = {
            "records": len(records),
            "records_yes": sum(r.label == 1 for r in records),
            "records_no": sum(r.label == 0 for r in records),
            "records_without_prediction": sum(r.label is None for r in records),
            "records_with_profile": sum(r.profile is not None for r in records),
            "matched": len(matches),
            "unmatched": len(unmatched),
            "match_rate": round(len(matches) / len(records), 4) if records else None,
            "matched_by_target": sum(m.by_target for m in matches),
            "matched_by_profile_only": sum(m.by_profile and not m.by_target for m in matches),
            "samples_in_split": len(split_samples),
            "samples_without_record": len(split_samples) - len(matches),
            "label_disagreements": int((~frame["label_agrees"]).sum()),
            "target_differs": int((~frame["target_agrees"]).sum()),
            "invalid": int((~frame["valid"]).sum()),
            "problems": count_problems(frame["problem"]),
            "unmatched_examples": [{"record": i, "target": records[i].target_key[:120]} for i in unmatched[:EXAMPLES]],
        }
    if not frames:
        return reasoning_frame("train", [], [], samples.iloc[:0]), summary
    return pd.concat(frames, ignore_index=True), summary


class ImportSummary(Summary):
    """``import.json``: the tables written and, for each one the authors' files provide, its counts
    (absent from the JSON when that file is not there)."""

    dataset: str
    texts_dir: str
    source: str
    model: str
    written: list[str] = []
    descriptions: dict[str, Any] | None = None  # text_summary of descriptions.parquet
    profiles: dict[str, Any] | None = None  # text_summary of profiles.parquet, plus the matching counts
    reasoning: dict[str, Any] | None = None  # per split: records read, matched, disagreements (import_reasoning)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


def run_import(params, dataset: str, out_dir: Path | None = None) -> ImportSummary:
    """Import a dataset's pre-generated descriptions, profiles and reasoning; write them + import.json."""
    folder = texts_dir(params, dataset)
    out_dir = Path(out_dir) if out_dir is not None else params.work_dir(dataset)
    summary = ImportSummary(dataset=dataset, texts_dir=str(folder), source=SOURCE, model=IMPORTED_MODEL)

    items_path = folder / ITEM_FILE
    items_info = read_json_map(items_path) if items_path.exists() else {}
    movie_path = folder / MOVIE_SUMMARY_FILE
    if items_info:
        descriptions = descriptions_from_items(items_info, items_path)
    elif movie_path.exists():
        try:
            movies = pd.read_csv(movie_path)
        except (OSError, ValueError) as exc:
            raise DataError(movie_path, f"not a readable CSV file: {exc}") from None
        descriptions = descriptions_from_movie_summaries(movies, movie_path)
    else:
        descriptions = None
    if descriptions is not None:
        write_parquet(out_dir / "descriptions.parquet", descriptions)
        summary.descriptions = text_summary(descriptions, "description", "item_id")
        summary.written.append("descriptions.parquet")

    samples_path = out_dir / "samples.parquet"
    samples = pd.read_parquet(samples_path) if samples_path.exists() else None
    profile_path = folder / PROFILE_FILE
    profiles = {str(k): str(v) for k, v in read_json_map(profile_path).items()} if profile_path.exists() else {}
    if profiles:
        users = None
        if samples is not None:
            users = sorted(samples["user_id"].astype(str).unique(), key=user_rank(samples["user_id"].astype(str)).get)
        frame = profiles_frame(profiles, users)
        write_parquet(out_dir / "profiles.parquet", frame)
        counts = text_summary(frame, "profile", "user_id")
        counts["imported"] = len(profiles)
        counts["users_without_profile"] = int((frame["profile"] == "").sum())
        if samples is not None:
            has_items = samples.groupby(samples["user_id"].astype(str))["profile_items"].apply(
                lambda s: any(len(x) for x in s)
            )
            counts["profile_items_but_no_text"] = int(
                sum(bool(has_items.get(u, False)) for u in frame.loc[frame["profile"] == "", "user_id"])
            )
            counts["imported_users_not_in_samples"] = len(set(profiles) - set(frame["user_id"]))
        summary.profiles = counts
        summary.written.append("profiles.parquet")

    if any((folder / SFT_FILE.format(split=s)).exists() for s in SPLITS):
        if samples is None:
            raise DataError(
                samples_path, "needed to match reasoning records to users: run `reasoningrec prepare` first"
            )
        _require_columns(samples, samples_path)
        reasoning, summary.reasoning = import_reasoning(folder, samples, _titles(folder, items_info, out_dir), profiles)
        write_parquet(out_dir / "reasoning.parquet", reasoning)
        summary.written.append("reasoning.parquet")
    summary.write(out_dir / "import.json")
    log.info("imported %s from %s into %s", ", ".join(summary.written) or "nothing", folder, out_dir)
    return summary


SAMPLE_COLUMNS = ("user_id", "split", "target_item", "label", "history_items", "history_labels", "profile_items")


def _require_columns(samples: pd.DataFrame, path: Path) -> None:
    missing = [c for c in SAMPLE_COLUMNS if c not in samples.columns]
    if missing:
        raise DataError(path, f"missing columns {missing} (has {list(samples.columns)})")
