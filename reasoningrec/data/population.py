"""Evaluation populations: ``all`` (every user, our split) and ``paper`` (the authors' scored records).

The ``paper`` population is, per valid/test record of the ReasoningRec authors (``sft_<split>.json.gz``:
one per user, ascending user order, no user id), one samples row (docs/paper_population.md gives
the evidence from the authors' code):

- **user**: the record's user. Which users have a record is not a rule of the data (the authors
  dropped users whose prompts were long, the last incomplete LLM batch and, for Beauty, records
  over 800 words with the generated reasoning), so users come from matching the records to our
  rows (:func:`reasoningrec.importer.match.match_records`, which keeps the ascending user order).
- **shown target**: the item the record asks about, one of the user's last three items (offset 1 =
  our test target, 2 = valid, 3 = train). Fashion records show their split's own target; the Beauty
  valid/test records show the training window (the authors built their input from the training
  window). Each record takes the offset whose target title and history titles it shows; where
  several fit equally (repeated items), the split's majority offset (:func:`majority_offset`).
- **history/profile**: our own window rule for that target position (``split.samples_from_arrays``).
- **label**: the authors' gold label, the like status of the user's *first* interaction with the
  split's own target item (their code looks a rating up by (user, item) and takes the first row).
  For Beauty valid/test it belongs to another item than the one shown: that is what they scored.

``python -m reasoningrec.data.population_report --report`` prints the populations' test statistics.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from reasoningrec.data.split import SAMPLE_SCHEMA, SPLITS
from reasoningrec.errors import ConfigError, DataError

PAPER_SPLITS = ("valid", "test")
OFFSETS = {name: offset for name, offset in SPLITS}  # train 3, valid 2, test 1
SPLIT_OF_OFFSET = {offset: name for name, offset in SPLITS}
# The authors score a seeded random sample of their test records (random.seed(42); random.sample):
# 600 of Beauty's, 800 of Fashion's (predfirst_evaluate_reasoning_rec.py, ``test_sample``).
SCORED_SEED = 42


@dataclass(frozen=True)
class AuthorsRecords:
    """The authors' parsed valid/test records and what matching them to users needs."""

    records: Mapping[str, Sequence]  # split -> [importer.SftRecord]
    shown: Mapping[str, Sequence[Sequence[str]]]  # split -> per record, its history entries (title_key form)
    titles: Mapping[str, str]  # item id -> title
    profiles: Mapping[str, str]  # user id -> profile text
    source: Path | str = "<records>"
    allow_unmatched: bool = False  # a user slice (max_users) leaves the others' records unmatched


def authors_records(
    raw: Mapping[str, Sequence[Mapping]],
    titles: Mapping[str, str],
    profiles: Mapping[str, str],
    source: Path | str = "<records>",
    allow_unmatched: bool = False,
) -> AuthorsRecords:
    """:class:`AuthorsRecords` from raw ``{instruction, input, output}`` records per split."""
    from reasoningrec.importer.sft import parse_record

    records = {split: [parse_record(r, i, source) for i, r in enumerate(rows)] for split, rows in raw.items()}
    shown = {split: [history_entries(r["input"]) for r in rows] for split, rows in raw.items()}
    return AuthorsRecords(records, shown, titles, profiles, source, allow_unmatched)


_ENTRY = re.compile(r"^[ \t]*(?:Liked|Disliked) ", re.M)
_TARGET_LINE = re.compile(r"(?:will purchase|watched) the next target (?:item|movie)")


def history_entries(text: str) -> list[str]:
    """The ``Liked ...``/``Disliked ...`` entries a record's input lists before its target, in title_key form."""
    from reasoningrec.importer.sft import title_key

    end = _TARGET_LINE.search(text)
    section = text[: end.start()] if end else text
    starts = [m.start() for m in _ENTRY.finditer(section)]
    return [title_key(section[a:b]) for a, b in zip(starts, [*starts[1:], len(section)], strict=True)]


def history_fit(entries: Sequence[str], history: Sequence[str], labels: Sequence[int]) -> tuple[int, int]:
    """How well a history (title keys, labels) fits a record's entries: (in-order matches, -length gap).

    An entry fits a history item when it starts with ``liked <title>`` / ``disliked <title>``; items
    are matched in order, each entry used once.
    """
    matched, at = 0, 0
    for title, label in zip(history, labels, strict=True):
        prefix = f"{'liked' if label else 'disliked'} {title}"
        hit = next((j for j in range(at, len(entries)) if title and entries[j].startswith(prefix)), None)
        if hit is not None:
            matched, at = matched + 1, hit + 1
    return matched, -abs(len(entries) - len(history))


@dataclass
class _Choice:
    record: int
    user: str
    offset: int
    candidates: list[int] = field(default_factory=list)  # offsets that fit the record equally well


def chronological(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows grouped by user in time order; equal timestamps keep their file order (prepare's order)."""
    ordered = frame.assign(_order=np.arange(len(frame)))
    return ordered.sort_values(["user_id", "timestamp", "_order"], kind="stable").drop(columns="_order")


def first_interaction_labels(interactions: pd.DataFrame, like_threshold: float) -> dict[tuple[str, str], int]:
    """(user, item) -> like status of the user's earliest interaction with the item (chronological)."""
    first = chronological(interactions).drop_duplicates(["user_id", "item_id"], keep="first")
    liked = (first["rating"] > like_threshold).astype(int)
    return dict(zip(zip(first["user_id"].astype(str), first["item_id"].astype(str), strict=True), liked, strict=True))


def candidate_rows(samples: pd.DataFrame, split: str) -> pd.DataFrame:
    """Every samples row relabelled as ``split``, with ``offset`` (1 test, 2 valid, 3 train) kept."""
    rows = samples[samples["split"].isin(OFFSETS)].copy()
    rows["offset"] = rows["split"].map(OFFSETS).astype(int)
    rows["split"] = split
    return rows.reset_index(drop=True)


def majority_offset(fits: Sequence[Sequence[int]], default: int) -> int:
    """The offset most records fit unambiguously (one offset only); ``default`` when none does."""
    single = Counter(f[0] for f in fits if len(f) == 1)
    return single.most_common(1)[0][0] if single else default


def _fitting_offsets(record, entries: Sequence[str], rows: pd.DataFrame, key, polarity) -> list[int]:
    """Offsets of one user's rows that show the record's target title and fit its history best.

    ``polarity(item)``: the liked/disliked word the authors wrote for the user's item.
    """
    scored = []
    for offset, target, history in zip(rows["offset"], rows["target_item"], rows["history_items"], strict=True):
        if record.target_key and key(target) == record.target_key:
            fit = history_fit(entries, [key(i) for i in history], [polarity(i) for i in history])
            scored.append((fit, offset))
    if not scored:
        return []
    best = max(score for score, _ in scored)
    return sorted(offset for score, offset in scored if score == best)


def choose_rows(
    authors: AuthorsRecords, samples: pd.DataFrame, split: str, first: Mapping[tuple[str, str], int]
) -> tuple[pd.DataFrame, dict]:
    """The candidate row (user, offset) each record of ``split`` shows; see the module docstring.

    ``first``: (user, item) -> first-interaction label, the polarity the authors' entries show.
    """
    from reasoningrec.importer.match import match_records
    from reasoningrec.importer.sft import title_key

    records, titles = authors.records[split], authors.titles
    candidates = candidate_rows(samples, split)
    matches = match_records(records, candidates, split, titles, authors.profiles)
    unmatched = sorted(set(range(len(records))) - {m.record for m in matches})
    if unmatched and not authors.allow_unmatched:
        raise DataError(
            authors.source,
            f"{len(unmatched)} of {len(records)} records match no user "
            f"(first: record {unmatched[0]}, target {records[unmatched[0]].target_key[:80]!r})",
        )
    keys: dict[str, str] = {}

    def key(item: object) -> str:
        item = str(item)
        if item not in keys:
            keys[item] = title_key(titles.get(item, ""))
        return keys[item]

    by_user = {user: rows for user, rows in candidates.groupby("user_id", sort=False)}
    choices = []
    for match in matches:
        user = str(candidates.at[match.sample, "user_id"])
        fits = _fitting_offsets(
            records[match.record],
            authors.shown[split][match.record],
            by_user[user],
            key,
            lambda item, user=user: first[(user, str(item))],
        )
        if not fits:
            raise DataError(
                authors.source,
                f"the record's target {records[match.record].target_key[:80]!r} is not "
                f"among the last three items of its user {user!r}",
                row=match.record,
            )
        choices.append(_Choice(match.record, user, fits[0], fits))
    majority = majority_offset([c.candidates for c in choices], OFFSETS[split])
    for choice in choices:
        if majority in choice.candidates:
            choice.offset = majority
    position = {
        (u, o): i for i, (u, o) in enumerate(zip(candidates["user_id"].astype(str), candidates["offset"], strict=True))
    }
    chosen = candidates.iloc[[position[(c.user, c.offset)] for c in choices]].reset_index(drop=True)
    chosen["record_index"] = [c.record for c in choices]
    summary = {
        "records": len(records),
        "matched": len(choices),
        "unmatched": len(unmatched),
        "shown_target": {SPLIT_OF_OFFSET[o]: int(n) for o, n in sorted(Counter(c.offset for c in choices).items())},
        "majority_shown_target": SPLIT_OF_OFFSET[majority],
        "ambiguous_offsets": sum(len(c.candidates) > 1 for c in choices),
    }
    return chosen, summary


def paper_population(
    samples: pd.DataFrame, interactions: pd.DataFrame, authors: AuthorsRecords, like_threshold: float
) -> tuple[pd.DataFrame, dict]:
    """Valid and test rows of the ``paper`` population (``SAMPLE_SCHEMA`` columns) and a summary.

    ``samples``: our rows of every split (``build_samples``); ``interactions``: the labelled
    interactions they were built from. Each row is the record's shown window with the authors'
    gold label (the first-interaction label of the split's own target); the summary counts the
    records whose own label disagrees (should be 0) and the rows whose label is not the shown item's.
    """
    first = first_interaction_labels(interactions, like_threshold)
    own = {
        (str(u), s): str(i)
        for u, s, i in zip(samples["user_id"], samples["split"], samples["target_item"], strict=True)
    }
    frames, summary = [], {}
    for split in PAPER_SPLITS:
        records = authors.records[split]
        chosen, info = choose_rows(authors, samples, split, first)
        gold = [first[(user, own[(user, split)])] for user in chosen["user_id"].astype(str)]
        shown_label = chosen["label"].astype(int).tolist()
        chosen["label"] = np.asarray(gold, dtype="int8")
        imported = [records[i].label for i in chosen["record_index"]]
        info["label_disagrees_with_record"] = sum(int(g != r) for g, r in zip(gold, imported, strict=True))
        info["label_is_not_the_shown_items"] = sum(int(g != s) for g, s in zip(gold, shown_label, strict=True))
        info["rows"] = len(chosen)
        info["likes"] = int(sum(gold))
        summary[split] = info
        frames.append(chosen[list(SAMPLE_SCHEMA.names)])
    return pd.concat(frames, ignore_index=True), summary


def with_population(samples: pa.Table, rows: pd.DataFrame) -> pa.Table:
    """``samples`` with its valid/test rows replaced by ``rows``; train rows and row order kept.

    Rows come grouped by user (the users' order of ``samples``), train before valid before test.
    """
    frame = samples.to_pandas()
    kept = frame[~frame["split"].isin(PAPER_SPLITS)]
    merged = pd.concat([kept, rows], ignore_index=True)
    user_order = {u: i for i, u in enumerate(pd.unique(frame["user_id"]))}
    split_order = {name: i for i, (name, _) in enumerate(SPLITS)}
    order = np.lexsort((merged["split"].map(split_order).to_numpy(), merged["user_id"].map(user_order).to_numpy()))
    merged = merged.iloc[order].reset_index(drop=True)
    merged["label"] = merged["label"].astype("int8")
    return pa.Table.from_pandas(merged, schema=SAMPLE_SCHEMA, preserve_index=False)


# ---------------------------------------------------------------------------------------------
# I/O: the authors' records of a dataset
# ---------------------------------------------------------------------------------------------


def read_authors_records(params, dataset: str, out_dir: Path, allow_unmatched: bool = False) -> AuthorsRecords:
    """The authors' valid/test records of ``dataset`` (its texts folder), titles and profiles."""
    from reasoningrec.importer.files import (
        ITEM_FILE,
        PROFILE_FILE,
        SFT_FILE,
        read_json_map,
        read_records,
        texts_dir,
    )

    try:
        folder = texts_dir(params, dataset)
    except ConfigError as exc:
        raise ConfigError(
            f"prepare.population 'paper' needs the authors' records of dataset {dataset!r}: {exc}"
        ) from None
    paths = {split: folder / SFT_FILE.format(split=split) for split in PAPER_SPLITS}
    missing = [p.name for p in paths.values() if not p.is_file()]
    if missing:
        raise ConfigError(
            f"prepare.population 'paper': dataset {dataset!r} has no authors' records "
            f"{', '.join(missing)} in {folder} (use population 'all')"
        )
    titles: dict[str, str] = {}
    items_path = Path(out_dir) / "items.parquet"
    if items_path.exists():
        items = pd.read_parquet(items_path, columns=["item_id", "title"])
        titles = {str(i): "" if t is None else str(t) for i, t in zip(items["item_id"], items["title"], strict=True)}
    if (folder / ITEM_FILE).exists():
        for item, info in read_json_map(folder / ITEM_FILE).items():
            if isinstance(info, Mapping) and info.get("title"):
                titles.setdefault(str(item), str(info["title"]))
    profiles = (
        {str(k): str(v) for k, v in read_json_map(folder / PROFILE_FILE).items()}
        if (folder / PROFILE_FILE).exists()
        else {}
    )
    raw = {split: read_records(path) for split, path in paths.items()}
    return authors_records(raw, titles, profiles, folder, allow_unmatched)
