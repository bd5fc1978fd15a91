"""Review sampling for item descriptions (the paper's Algorithm 1, without replacement).

For each item, up to ``p`` reviews are allocated to each rating value in proportion to how often the
item received it (floor of the share), topped up to ``p`` from the remaining reviews, drawn without
replacement (the authors' code drew with replacement and repeated reviews), each trimmed to
``words`` words. The draw is seeded per item, so one item's sample does not depend on the others.

Review texts stay on disk until they are needed: :func:`item_reviews` decides what to draw from
ratings alone, then reads the review column of ``interactions.parquet`` batch by batch, keeping only
the drawn rows (an item with at most ``p`` reviews keeps them all: no draw, the same result).
"""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd


def trim_words(text: str, words: int) -> str:
    return " ".join(text.split()[:words])


def allocate(counts: dict[float, int], p: int) -> dict[float, int]:
    """Reviews to draw per rating value: floor(p * share), never more than there are."""
    total = sum(counts.values())
    if total == 0:
        return {r: 0 for r in counts}
    return {r: min(c, int(np.floor(p * c / total))) for r, c in counts.items()}


def choose_reviews(ratings: np.ndarray, p: int, seed: int, item_id: str) -> np.ndarray:
    """Positions (ascending) of the up-to ``p`` reviews drawn for one item, from their ratings."""
    n = len(ratings)
    if p == 0 or n == 0:
        return np.zeros(0, dtype=np.int64)
    if n <= p:  # every rating value's quota covers all its reviews: the draw keeps everything
        return np.arange(n)
    rng = np.random.default_rng([seed, zlib.crc32(item_id.encode("utf-8"))])
    values, counts = np.unique(ratings, return_counts=True)
    quota = allocate(dict(zip(values.tolist(), counts.tolist(), strict=True)), p)
    chosen: list[int] = []
    for value in values.tolist():
        pool = np.flatnonzero(ratings == value)
        chosen.extend(rng.choice(pool, size=quota[value], replace=False).tolist())
    rest = np.setdiff1d(np.arange(n), chosen)
    top_up = min(p - len(chosen), len(rest))
    if top_up > 0:
        chosen.extend(rng.choice(rest, size=top_up, replace=False).tolist())
    return np.array(sorted(chosen), dtype=np.int64)


def sample_item_reviews(
    ratings: np.ndarray, texts: list[str], p: int, words: int, seed: int, item_id: str
) -> list[str]:
    """Sample up to ``p`` of one item's reviews (texts aligned with ratings), in the original order."""
    if not texts:
        return []
    return [trim_words(texts[i], words) for i in choose_reviews(np.asarray(ratings), p, seed, item_id)]


def sample_reviews(frame: pd.DataFrame, p: int, words: int, seed: int) -> pd.DataFrame:
    """``item_id`` + ``reviews`` (list[str]) for every item in ``frame``; no review text -> empty list."""
    has_text = frame["review"].notna() & frame["review"].astype(str).str.strip().ne("")
    texts = frame[has_text]
    grouped = {item: g for item, g in texts.groupby("item_id", sort=False)}
    rows = []
    for item in sorted(frame["item_id"].unique()):
        group = grouped.get(item)
        reviews = (
            []
            if group is None
            else sample_item_reviews(
                group["rating"].to_numpy(), group["review"].astype(str).tolist(), p, words, seed, item
            )
        )
        rows.append((item, reviews))
    return pd.DataFrame(rows, columns=["item_id", "reviews"])


# --- interactions.parquet, texts read lazily ----------------------------------------------------

_BATCH_ROWS = 1 << 18


def review_flags(path) -> np.ndarray | None:
    """Per row of ``interactions.parquet``: whether it has a non-blank review; None if none has."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    handle = pq.ParquetFile(path)
    column = handle.schema_arrow.get_field_index("review")
    if column < 0 or pa.types.is_null(handle.schema_arrow.field(column).type):
        return None
    meta = handle.metadata
    stats = [meta.row_group(g).column(column).statistics for g in range(meta.num_row_groups)]
    if all(
        s is not None and s.has_null_count and s.null_count == meta.row_group(g).num_rows for g, s in enumerate(stats)
    ):
        return None
    parts = []
    for batch in handle.iter_batches(columns=["review"], batch_size=_BATCH_ROWS):
        text = batch.column(0)  # blank: empty, or only whitespace (tested without copying the texts)
        blank = pc.or_(pc.equal(pc.utf8_length(text), 0), pc.utf8_is_space(text))
        parts.append(pc.fill_null(pc.invert(blank), False).to_numpy(zero_copy_only=False))
    flags = np.concatenate(parts) if parts else np.zeros(0, dtype=bool)
    return flags if flags.any() else None


def read_rows(path, rows: np.ndarray, column: str = "review") -> dict[int, str]:
    """``column`` of the given file rows (ascending), read batch by batch."""
    import pyarrow.parquet as pq

    out: dict[int, str] = {}
    start = 0
    for batch in pq.ParquetFile(path).iter_batches(columns=[column], batch_size=_BATCH_ROWS):
        end = start + batch.num_rows
        lo, hi = np.searchsorted(rows, [start, end])
        if hi > lo:
            picked = rows[lo:hi]
            values = batch.column(0).take(picked - start).to_pylist()
            out.update(zip(picked.tolist(), values, strict=True))
        start = end
    return out


def item_reviews(
    path, rows: np.ndarray, items: np.ndarray, ratings: np.ndarray, item_ids, p: int, words: int, seed: int
) -> pd.DataFrame:
    """``item_id`` + ``reviews`` for every item among ``rows`` (file rows of the kept interactions, in
    file order, with their item codes into ``item_ids`` and ratings), items in id order."""
    present = np.flatnonzero(np.bincount(items, minlength=len(item_ids)))
    names = np.asarray(item_ids.take(present).to_numpy(zero_copy_only=False), dtype=object)
    by_name = np.argsort(names, kind="stable")
    chosen: dict[int, np.ndarray] = {}
    flags = review_flags(path) if p > 0 and len(rows) else None
    if flags is not None:
        has = flags[rows]
        text_rows, text_items, text_ratings = rows[has], items[has], ratings[has]
        order = np.argsort(text_items, kind="stable")
        text_rows, text_items, text_ratings = text_rows[order], text_items[order], text_ratings[order]
        bounds = np.flatnonzero(np.r_[True, text_items[1:] != text_items[:-1], True]) if len(order) else [0]
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
            code = int(text_items[lo])
            picks = choose_reviews(text_ratings[lo:hi], p, seed, item_ids[code].as_py())
            chosen[code] = text_rows[lo:hi][picks]
    wanted = np.sort(np.concatenate(list(chosen.values()))) if chosen else np.zeros(0, dtype=np.int64)
    texts = read_rows(path, wanted) if len(wanted) else {}
    reviews = [[trim_words(str(texts[r]), words) for r in chosen.get(int(code), ())] for code in present[by_name]]
    return pd.DataFrame({"item_id": names[by_name], "reviews": reviews})
