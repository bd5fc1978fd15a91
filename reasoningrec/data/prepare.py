"""Prepare stage: interactions -> ``samples.parquet`` + ``item_reviews.parquet`` + ``prepare.json``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from reasoningrec.data.ingest import read_interactions
from reasoningrec.data.kcore import drop_duplicates, first_users, kcore
from reasoningrec.data.population import paper_population, read_authors_records, with_population
from reasoningrec.data.reviews import sample_reviews
from reasoningrec.data.split import build_samples
from reasoningrec.errors import DataError
from reasoningrec.io import atomic_path, write_json, write_parquet


def filter_interactions(frame: pd.DataFrame, dataset: str, k: int, mode: str, source: Path,
                        dedup: bool = True) -> tuple[pd.DataFrame, dict]:
    """Duplicates out (unless ``dedup`` is off), then k-core; an error naming dataset and k when no user survives."""
    deduped = drop_duplicates(frame) if dedup else frame
    kept = kcore(deduped, k, mode)
    if kept.empty:
        best = int(deduped.groupby("user_id").size().max()) if len(deduped) else 0
        raise DataError(
            source,
            f"dataset {dataset!r}: no user survives the {mode} k-core with k={k} "
            f"(the most interactions any user has is {best}); lower datasets.{dataset}.kcore.k",
        )
    stats = {
        "duplicates_dropped": int(len(frame) - len(deduped)),
        "kcore_users_dropped": int(deduped["user_id"].nunique() - kept["user_id"].nunique()),
        "kcore_items_dropped": int(deduped["item_id"].nunique() - kept["item_id"].nunique()),
        "kcore_rows_dropped": int(len(deduped) - len(kept)),
    }
    return kept, stats


def prepare_frames(frame: pd.DataFrame, params, dataset: str, source: Path, max_users: int | None = None,
                   authors=None) -> tuple[pa.Table, pd.DataFrame, dict]:
    """Pure core of the stage: (samples table, item reviews, summary) from raw interactions.

    ``authors`` (:class:`~reasoningrec.data.population.AuthorsRecords`): valid/test rows become the
    ``paper`` population (train rows stay ours).
    """
    config, settings = params.dataset(dataset), params.prepare
    kept, stats = filter_interactions(frame, dataset, config.kcore.k, config.kcore.mode, source,
                                      config.drop_duplicates)
    if max_users is not None:
        before = kept["user_id"].nunique()
        kept = first_users(kept, max_users)
        stats["max_users_dropped"] = int(before - kept["user_id"].nunique())
    kept = kept.assign(label=(kept["rating"] > settings.like_threshold).astype("int8"))
    samples, too_few = build_samples(kept, config.history_len, settings.profile_items)
    population = {"name": "all"}
    if authors is not None:
        rows, population = paper_population(samples.to_pandas(), kept, authors, settings.like_threshold)
        samples, population = with_population(samples, rows), {"name": "paper", "source": str(authors.source),
                                                               **population}
    reviews = sample_reviews(kept, settings.reviews_per_item, settings.review_words, settings.seed)
    splits = samples.column("split").to_pandas().value_counts()
    profiles = samples.filter(pa.compute.equal(samples["split"], "test")).column("profile_items")
    summary = {
        "dataset": dataset,
        "users": int(kept["user_id"].nunique()),
        "items": int(kept["item_id"].nunique()),
        "interactions": int(len(kept)),
        "positives_share": round(float(kept["label"].mean()), 6),
        "samples": {name: int(splits.get(name, 0)) for name in ("train", "valid", "test")},
        "users_with_profile_items": int(sum(1 for p in profiles.to_pylist() if p)),
        "items_with_reviews": int((reviews["reviews"].map(len) > 0).sum()),
        "users_dropped": {
            "kcore": stats["kcore_users_dropped"],
            "max_users": stats.get("max_users_dropped", 0),
            "fewer_than_3_items": too_few,
        },
        "duplicates_dropped": stats["duplicates_dropped"],
        "drop_duplicates": config.drop_duplicates,
        "kcore": {"k": config.kcore.k, "mode": config.kcore.mode, "rows_dropped": stats["kcore_rows_dropped"],
                  "items_dropped": stats["kcore_items_dropped"]},
        "history_len": config.history_len,
        "profile_items": settings.profile_items,
        "like_threshold": settings.like_threshold,
        "max_users": max_users,
        "population": population,
    }
    if samples.num_rows == 0:
        raise DataError(source, f"dataset {dataset!r}: no user has the 3 interactions a train/valid/test split needs")
    return samples, reviews, summary


def run_prepare(params, dataset: str, out_dir: Path | None = None, max_users: int | None = None) -> dict:
    """Read ``interactions.parquet`` from the dataset's folder, write samples, reviews and the summary."""
    out = Path(out_dir) if out_dir is not None else params.work_dir(dataset)
    source = out / "interactions.parquet"
    max_users = params.prepare.max_users if max_users is None else max_users
    authors = None
    if params.prepare.population == "paper":
        authors = read_authors_records(params, dataset, out, allow_unmatched=max_users is not None)
    samples, reviews, summary = prepare_frames(read_interactions(source), params, dataset, source, max_users, authors)
    with atomic_path(out / "samples.parquet") as tmp:
        pq.write_table(samples, tmp)
    write_parquet(out / "item_reviews.parquet", reviews)
    write_json(out / "prepare.json", summary)
    return summary
