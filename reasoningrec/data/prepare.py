"""Prepare stage: interactions -> ``samples.parquet`` + ``item_reviews.parquet`` + ``prepare.json``.

Works on integer codes (:mod:`reasoningrec.data.frames`): one stable sort by (user, time, file
order) serves duplicate removal, the k-core and the chronological samples; the review texts are
read from ``interactions.parquet`` only for the reviews drawn (:func:`reviews.item_reviews`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from reasoningrec.data.frames import Interactions, load_interactions
from reasoningrec.data.kcore import kcore_mask, natural_order, order_by, repeat_mask
from reasoningrec.data.population import paper_population, read_authors_records, with_population
from reasoningrec.data.reviews import item_reviews
from reasoningrec.data.split import lexicographic_rank, samples_from_arrays
from reasoningrec.errors import DataError
from reasoningrec.io import atomic_path, remove_stale_temps, write_parquet
from reasoningrec.summary import Summary

OUTPUTS = ("samples.parquet", "item_reviews.parquet", "prepare.json")


class PrepareSummary(Summary):
    """``prepare.json``: what the filters kept and dropped, the samples per split, the settings used."""

    dataset: str
    users: int
    items: int
    interactions: int
    positives_share: float
    samples: dict[str, int]  # per split
    users_with_profile_items: int
    users_dropped: dict[str, int]  # kcore, max_users, fewer_than_3_items
    duplicates_dropped: int
    drop_duplicates: bool
    kcore: dict[str, int | str]  # k, mode, rows_dropped, items_dropped
    history_len: int
    profile_items: int
    like_threshold: float
    max_users: int | None
    population: dict[str, Any]  # name ("all" or "paper"), and for "paper" its source and matching counts
    items_with_reviews: int


@dataclass
class Kept:
    """The interactions prepare keeps: a row mask in file order and the same rows in time order."""

    mask: np.ndarray
    chronological: np.ndarray  # row positions sorted by (user id, timestamp, file order)
    stats: dict
    user_rank: np.ndarray  # rank of each user code in id order


def check_complete(data: Interactions) -> None:
    """Null ids, ratings or timestamps break the contract ingest writes: name the first record."""
    for name, bad in (
        ("user_id", data.users < 0),
        ("item_id", data.items < 0),
        ("rating", np.isnan(data.rating)),
        ("timestamp", data.timestamp_null),
    ):
        if bad is not None and bad.any():
            raise DataError(
                data.path,
                f"null {name}: the file breaks the interactions contract; run `reasoningrec ingest` again",
                record=int(np.flatnonzero(bad)[0]),
                field=name,
            )


def filter_interactions(
    data: Interactions, dataset: str, k: int, mode: str, dedup: bool = True, max_users: int | None = None
) -> Kept:
    """Duplicates out (unless ``dedup`` is off), then k-core, then the first ``max_users`` users;
    an error naming dataset and k when no user survives."""
    rank = lexicographic_rank(data.user_ids)
    user_rank = rank[data.users]
    order = order_by(user_rank, data.timestamp)
    repeats = repeat_mask(user_rank, data.items, data.timestamp, order) if dedup else np.zeros(len(data), bool)
    deduped = ~repeats
    keep = kcore_mask(data.users, data.items, deduped, k, mode)
    if not keep.any():
        best = int(np.bincount(data.users[deduped]).max()) if deduped.any() else 0
        raise DataError(
            data.path,
            f"dataset {dataset!r}: no user survives the {mode} k-core with k={k} "
            f"(the most interactions any user has is {best}); lower datasets.{dataset}.kcore.k",
        )
    stats = {
        "duplicates_dropped": int(repeats.sum()),
        "kcore_users_dropped": _distinct(data.users, deduped) - _distinct(data.users, keep),
        "kcore_items_dropped": _distinct(data.items, deduped) - _distinct(data.items, keep),
        "kcore_rows_dropped": int(deduped.sum() - keep.sum()),
    }
    if max_users is not None:
        present = np.flatnonzero(np.bincount(data.users[keep], minlength=len(data.user_ids)))
        names = np.asarray(data.user_ids.take(pa.array(present)).to_numpy(zero_copy_only=False), dtype=object)
        chosen = np.zeros(len(data.user_ids), dtype=bool)
        chosen[present[natural_order(names)[:max_users]]] = True
        stats["max_users_dropped"] = int(len(present) - chosen.sum())
        keep &= chosen[data.users]
    return Kept(keep, order[keep[order]], stats, rank)


def _distinct(codes: np.ndarray, mask: np.ndarray) -> int:
    return int(np.count_nonzero(np.bincount(codes[mask]))) if mask.any() else 0


def prepare_frames(
    data: Interactions, params, dataset: str, max_users: int | None = None, authors=None
) -> tuple[pa.Table, Kept, dict]:
    """Pure core of the stage: (samples table, kept interactions, summary without the reviews).

    ``authors`` (:class:`~reasoningrec.data.population.AuthorsRecords`): valid/test rows become the
    ``paper`` population (train rows stay ours).
    """
    config, settings = params.dataset(dataset), params.prepare
    check_complete(data)
    kept = filter_interactions(data, dataset, config.kcore.k, config.kcore.mode, config.drop_duplicates, max_users)
    labels = (data.rating > settings.like_threshold).astype(np.int8)
    rows, rank = kept.chronological, kept.user_rank
    samples, too_few = samples_from_arrays(
        rank[data.users[rows]],
        data.items[rows],
        data.rating[rows],
        data.timestamp[rows],
        labels[rows],
        data.user_ids,
        data.item_ids,
        np.argsort(rank),
        config.history_len,
        settings.profile_items,
    )
    if samples.num_rows == 0:
        raise DataError(
            data.path, f"dataset {dataset!r}: no user has the 3 interactions a train/valid/test split needs"
        )
    population = {"name": "all"}
    if authors is not None:
        kept_frame = data.subset(kept.mask).frame().astype({"user_id": str, "item_id": str})
        rows_, population = paper_population(samples.to_pandas(), kept_frame, authors, settings.like_threshold)
        samples, population = (
            with_population(samples, rows_),
            {"name": "paper", "source": str(authors.source), **population},
        )
    splits = dict(
        zip(*np.unique(samples.column("split").to_numpy(zero_copy_only=False), return_counts=True), strict=True)
    )
    tests = pc.equal(samples["split"], "test")
    profiles = pc.list_value_length(samples.filter(tests).column("profile_items")).to_numpy(zero_copy_only=False)
    summary = {
        "dataset": dataset,
        "users": _distinct(data.users, kept.mask),
        "items": _distinct(data.items, kept.mask),
        "interactions": int(kept.mask.sum()),
        "positives_share": round(float(labels[kept.mask].mean()), 6),
        "samples": {name: int(splits.get(name, 0)) for name in ("train", "valid", "test")},
        "users_with_profile_items": int((profiles > 0).sum()),
        "users_dropped": {
            "kcore": kept.stats["kcore_users_dropped"],
            "max_users": kept.stats.get("max_users_dropped", 0),
            "fewer_than_3_items": too_few,
        },
        "duplicates_dropped": kept.stats["duplicates_dropped"],
        "drop_duplicates": config.drop_duplicates,
        "kcore": {
            "k": config.kcore.k,
            "mode": config.kcore.mode,
            "rows_dropped": kept.stats["kcore_rows_dropped"],
            "items_dropped": kept.stats["kcore_items_dropped"],
        },
        "history_len": config.history_len,
        "profile_items": settings.profile_items,
        "like_threshold": settings.like_threshold,
        "max_users": max_users,
        "population": population,
    }
    return samples, kept, summary


def run_prepare(params, dataset: str, out_dir: Path | None = None, max_users: int | None = None) -> PrepareSummary:
    """Read ``interactions.parquet`` from the dataset's folder, write samples, reviews and the summary."""
    import pyarrow.parquet as pq

    out = Path(out_dir) if out_dir is not None else params.work_dir(dataset)
    remove_stale_temps(out, OUTPUTS)
    source = out / "interactions.parquet"
    max_users = params.prepare.max_users if max_users is None else max_users
    authors = None
    if params.prepare.population == "paper":
        authors = read_authors_records(params, dataset, out, allow_unmatched=max_users is not None)
    data = load_interactions(source, f"run `reasoningrec ingest -d {dataset}`")
    samples, kept, summary = prepare_frames(data, params, dataset, max_users, authors)
    settings = params.prepare
    rows = np.flatnonzero(kept.mask)
    reviews = item_reviews(
        source,
        rows,
        data.items[rows],
        data.rating[rows],
        data.item_ids,
        settings.reviews_per_item,
        settings.review_words,
        settings.seed,
    )
    summary = PrepareSummary(**summary, items_with_reviews=int((reviews["reviews"].map(len) > 0).sum()))
    with atomic_path(out / "samples.parquet") as tmp:
        pq.write_table(samples, tmp)
    write_parquet(out / "item_reviews.parquet", reviews)
    summary.write(out / "prepare.json")
    return summary
