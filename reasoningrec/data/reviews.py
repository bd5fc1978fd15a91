"""Review sampling for item descriptions (the paper's Algorithm 1, without replacement).

For each item, up to ``p`` reviews are allocated to each rating value in proportion to how often the
item received it (floor of the share), topped up to ``p`` from the remaining reviews, drawn without
replacement (the authors' code drew with replacement and repeated reviews), each trimmed to
``words`` words. The draw is seeded per item, so one item's sample does not depend on the others.
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


def sample_item_reviews(ratings: np.ndarray, texts: list[str], p: int, words: int, seed: int, item_id: str
                        ) -> list[str]:
    """Sample up to ``p`` of one item's reviews (texts aligned with ratings), in the original order."""
    if p == 0 or not texts:
        return []
    rng = np.random.default_rng([seed, zlib.crc32(item_id.encode("utf-8"))])
    values, counts = np.unique(ratings, return_counts=True)
    quota = allocate(dict(zip(values.tolist(), counts.tolist(), strict=True)), p)
    chosen: list[int] = []
    for value in values.tolist():
        pool = np.flatnonzero(ratings == value)
        chosen.extend(rng.choice(pool, size=quota[value], replace=False).tolist())
    rest = np.setdiff1d(np.arange(len(texts)), chosen)
    top_up = min(p - len(chosen), len(rest))
    if top_up > 0:
        chosen.extend(rng.choice(rest, size=top_up, replace=False).tolist())
    return [trim_words(texts[i], words) for i in sorted(chosen)]


def sample_reviews(frame: pd.DataFrame, p: int, words: int, seed: int) -> pd.DataFrame:
    """``item_id`` + ``reviews`` (list[str]) for every item in ``frame``; no review text -> empty list."""
    has_text = frame["review"].notna() & frame["review"].astype(str).str.strip().ne("")
    texts = frame[has_text]
    grouped = {item: g for item, g in texts.groupby("item_id", sort=False)}
    rows = []
    for item in sorted(frame["item_id"].unique()):
        group = grouped.get(item)
        reviews = [] if group is None else sample_item_reviews(
            group["rating"].to_numpy(), group["review"].astype(str).tolist(), p, words, seed, item
        )
        rows.append((item, reviews))
    return pd.DataFrame(rows, columns=["item_id", "reviews"])
