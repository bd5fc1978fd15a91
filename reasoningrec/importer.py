"""Import texts written by someone else's LLM (the ReasoningRec authors' Mixtral outputs).

Layout of a texts folder (the paper's processed data, or any user's files shaped the same way):

- ``processed_item_information.json``: item id -> {title, brand, price, description}
- ``user_profile_summary.json``: user id -> profile text
- ``sft_{train,valid,test}.json.gz``: JSON list of {instruction, input, output}, one per user, in
  ascending user order but without user ids; ``output`` = ``Prediction: Yes|No`` + reasoning
- ``movie_summary_25_words.csv`` (ML-1M): movie_id, ..., summary

Reasoning records are matched to the rows of ``samples.parquet`` by the target title, the history
titles with their liked/disliked polarity and the profile text, and the match is made consistent with
the ascending user order by a weighted increasing-subsequence alignment (:func:`match_records`).
"""

from __future__ import annotations

import gzip
import html
import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from reasoningrec.answer import parse_answer
from reasoningrec.errors import DataError
from reasoningrec.io import write_json, write_parquet
from reasoningrec.synthesis.guards import TRUNCATED, check_output, count_problems
from reasoningrec.synthesis.text import normalize_ws, postprocess_output

log = logging.getLogger(__name__)

IMPORTED_MODEL = "Mixtral-8x7B-Instruct (paper authors)"
SOURCE = "imported"
SPLITS = ("train", "valid", "test")
ITEM_FILE = "processed_item_information.json"
PROFILE_FILE = "user_profile_summary.json"
MOVIE_SUMMARY_FILE = "movie_summary_25_words.csv"
SFT_FILE = "sft_{split}.json.gz"

# Scores of the evidence linking a record to a sample row. A match needs MIN_SCORE: the target title
# alone, or the profile text / the user's target in another split plus half of the history titles.
TARGET_SCORE, SHIFTED_TARGET_SCORE, PROFILE_SCORE, HISTORY_SCORE, CONTRADICTION = 3.0, 2.0, 2.0, 2.0, -2.0
MIN_SCORE = 3.0
EXAMPLES = 3

_PROFILE = re.compile(r"^\s*User Profile\s*-\s*(.*?)\n\s*User (?:purchased|watched)\b", re.S)
_TARGET_QUOTED = re.compile(r'next target (?:item|movie) - "(.*)" in at ?most \d+ words', re.S)
_TARGET_LINE = re.compile(
    r"(?:will purchase|watched) the next target (?:item|movie) - (.*?)(?: Brand: | Price: | Description: | \(Genre: |\n)",
    re.S,
)


def title_key(title: object) -> str:
    """The form titles are compared in: HTML entities decoded, whitespace collapsed, lower case."""
    if title is None or (isinstance(title, float) and title != title):
        return ""
    return normalize_ws(html.unescape(str(title))).lower()


@dataclass(frozen=True)
class SftRecord:
    """One parsed instruction-tuning record."""

    index: int
    profile: str | None  # whitespace-normalised profile text, None when the record has no profile
    target_key: str  # title_key of the target item ("" when it cannot be found)
    text_key: str  # " " + the whole input in title_key form, for history look-ups
    label: int | None  # 1 = "Prediction: Yes", 0 = "No", None = no prediction line
    reasoning: str


def parse_record(record: Mapping, index: int, path: str | Path = "<records>") -> SftRecord:
    """Parse one ``{instruction, input, output}`` record; malformed ones raise :class:`DataError`."""
    for field in ("input", "output"):
        if not isinstance(record.get(field), str):
            raise DataError(path, f"expected a string {field!r} in every record", row=index, field=field)
    text, output = record["input"], record["output"]
    profile = _PROFILE.match(text)
    target = _TARGET_QUOTED.search(text) or _TARGET_LINE.search(text)
    answer = parse_answer(output, anywhere=False)
    return SftRecord(
        index=index,
        profile=normalize_ws(profile.group(1)) if profile else None,
        target_key=title_key(target.group(1)) if target else "",
        text_key=" " + title_key(text),
        label=answer.label,
        reasoning=postprocess_output(answer.reasoning),
    )


def read_records(path: Path) -> list[dict]:
    """Read a (gzipped) JSON list of records, with errors naming the file."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(path, f"not a readable JSON file: {exc}") from None
    if not isinstance(data, list):
        raise DataError(path, f"expected a JSON list of records, got {type(data).__name__}")
    for row, record in enumerate(data):
        if not isinstance(record, dict):
            raise DataError(path, "expected an object {instruction, input, output}", row=row)
    return data


def read_json_map(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(path, f"not a readable JSON file: {exc}") from None
    if not isinstance(data, dict):
        raise DataError(path, f"expected a JSON object keyed by id, got {type(data).__name__}")
    return data


# ---------------------------------------------------------------------------------------------
# Matching records to sample rows
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Match:
    record: int
    sample: int  # positional index into the split's samples frame
    score: float
    by_target: bool  # the record's target title is this sample's target title
    by_profile: bool  # the record's profile text is this user's profile


def _user_rank(user_ids: Sequence[str]) -> dict[str, int]:
    """Ascending user order: numeric when every id is an integer, else lexicographic."""
    unique = set(user_ids)
    numeric = all(u.lstrip("-").isdigit() for u in unique)
    ordered = sorted(unique, key=int if numeric else str)
    return {user: rank for rank, user in enumerate(ordered)}


def history_found(text_key: str, history: Sequence[str], labels: Sequence[int],
                  memo: dict[tuple[str, int], bool] | None = None) -> int:
    """How many history titles appear in ``text_key`` after the right "liked"/"disliked" word."""
    memo = {} if memo is None else memo
    count = 0
    for title, label in zip(history, labels, strict=False):
        pair = (title, int(label))
        if pair not in memo:
            # text_key starts with a space, which keeps " liked X" from matching inside " disliked X".
            memo[pair] = bool(title) and f" {'liked' if pair[1] else 'disliked'} {title}" in text_key
        count += memo[pair]
    return count


def score_candidate(record: SftRecord, target_match: bool, shifted_target: bool, history: Sequence[str],
                    labels: Sequence[int], profile: str | None,
                    memo: dict[tuple[str, int], bool] | None = None) -> tuple[float, bool]:
    """Evidence that ``record`` was written for a sample with these titles and this user profile.

    ``shifted_target``: the record's target is this user's target in another split (the authors'
    Beauty valid/test records repeat the training window), which identifies the user, not the row.
    """
    by_profile = record.profile is not None and profile is not None and record.profile == profile
    score = TARGET_SCORE * target_match + SHIFTED_TARGET_SCORE * (shifted_target and not target_match)
    score += PROFILE_SCORE * by_profile
    if (record.profile is None) != (profile is None):
        score += CONTRADICTION  # one side has a profile, the other has none
    if len(history) and score + HISTORY_SCORE >= MIN_SCORE:
        score += HISTORY_SCORE * history_found(record.text_key, history, labels, memo) / len(history)
    return score, by_profile


class _PrefixMax:
    """Fenwick tree of prefix maxima over user ranks: the best chain ending below a given rank."""

    def __init__(self, size: int):
        self.tree: list[tuple[float, int]] = [(0.0, -1)] * (size + 1)

    def query(self, rank: int) -> tuple[float, int]:
        """Best (total, node) over ranks < ``rank``."""
        best, i = (0.0, -1), rank
        while i > 0:
            best = max(best, self.tree[i])
            i -= i & -i
        return best

    def update(self, rank: int, value: tuple[float, int]) -> None:
        i = rank + 1
        while i < len(self.tree):
            self.tree[i] = max(self.tree[i], value)
            i += i & -i


def match_records(
    records: Sequence[SftRecord],
    samples: pd.DataFrame,
    split: str,
    titles: Mapping[str, str],
    profiles: Mapping[str, str],
) -> list[Match]:
    """Match the records of one split (ascending user order) to rows of ``samples`` of that split.

    Candidates of a record are the split's rows whose target title or user profile equals the
    record's, and the split's rows of users whose target in another split is the record's target.
    Each gets a score (:func:`score_candidate`); among matchings whose users strictly increase with
    the record order, the one of highest total score is chosen (a weighted longest increasing
    subsequence, O(candidates · log users)); candidates below ``MIN_SCORE`` are never used.
    Returned ``Match.sample`` values are positions in ``samples[samples.split == split]``.
    """
    key_cache: dict[str, str] = {}

    def key(item: object) -> str:
        item = str(item)
        if item not in key_cache:
            key_cache[item] = title_key(titles.get(item, ""))
        return key_cache[item]

    all_users = samples["user_id"].astype(str).tolist()
    rank = _user_rank(all_users)
    profile_of = {str(u): normalize_ws(p) for u, p in profiles.items() if normalize_ws(p)}
    in_split = (samples["split"] == split).to_numpy()
    split_pos = {}  # frame position -> position within the split
    rows_of_user: dict[str, list[int]] = {}
    for pos, flag in enumerate(in_split):
        if flag:
            split_pos[pos] = len(split_pos)
            rows_of_user.setdefault(all_users[pos], []).append(split_pos[pos])
    split_rows = samples[in_split].reset_index(drop=True)
    users = split_rows["user_id"].astype(str).tolist()
    targets = [key(i) for i in split_rows["target_item"]]
    histories = [[key(i) for i in h] for h in split_rows["history_items"]]
    history_labels = [list(h) for h in split_rows["history_labels"]]

    exact: dict[str, list[int]] = {}
    for pos, target in enumerate(targets):
        exact.setdefault(target, []).append(pos)
    other: dict[str, set[str]] = {}  # target title in another split -> users
    for pos, (user, item) in enumerate(zip(all_users, samples["target_item"], strict=True)):
        if not in_split[pos]:
            other.setdefault(key(item), set()).add(user)
    by_profile: dict[str, list[int]] = {}
    for user, rows in rows_of_user.items():
        if user in profile_of:
            by_profile.setdefault(profile_of[user], []).extend(rows)

    best = _PrefixMax(len(rank) + 1)
    nodes: list[tuple[Match, int]] = []  # (match, previous node)
    for record in records:
        target = record.target_key
        candidates = set(exact.get(target, [])) if target else set()
        if record.profile:
            candidates.update(by_profile.get(record.profile, []))
        shifted_users = other.get(target, set()) if target else set()
        for user in shifted_users:
            candidates.update(rows_of_user.get(user, []))
        scored = []
        found: dict[tuple[str, int], bool] = {}  # near-duplicate users share titles: look each up once
        for pos in sorted(candidates):
            target_match = bool(target) and targets[pos] == target
            score, p_ok = score_candidate(record, target_match, users[pos] in shifted_users, histories[pos],
                                          history_labels[pos], profile_of.get(users[pos]), found)
            if score >= MIN_SCORE:
                total, previous = best.query(rank[users[pos]])
                scored.append((total + score, previous, Match(record.index, pos, score, target_match, p_ok)))
        # Insert after scoring every candidate: one record must not chain onto itself.
        for total, previous, match in scored:
            nodes.append((match, previous))
            best.update(rank[users[match.sample]], (total, len(nodes) - 1))
    _, node = best.query(len(rank) + 1)
    chain: list[Match] = []
    while node >= 0:
        match, node = nodes[node]
        chain.append(match)
    return chain[::-1]


# ---------------------------------------------------------------------------------------------
# Frames
# ---------------------------------------------------------------------------------------------


def _guarded(texts: Sequence[str]) -> tuple[list[bool], list[str | None]]:
    problems = [check_output(t) for t in texts]
    return [_acceptable(p) for p in problems], problems


def _acceptable(problem: str | None) -> bool:
    """Imported texts are kept as published: a cut-off ending (common in the authors' Mixtral
    outputs, which hit their token limit) is reported in ``problem`` but does not make a row invalid."""
    return problem is None or problem == TRUNCATED


def descriptions_from_items(items: Mapping[str, Mapping], path: str | Path = ITEM_FILE) -> pd.DataFrame:
    """descriptions.parquet rows from ``processed_item_information.json``."""
    rows = []
    for item_id, info in items.items():
        if not isinstance(info, Mapping):
            raise DataError(path, "expected an object {title, brand, price, description}", field=str(item_id))
        rows.append((str(item_id), postprocess_output(str(info.get("description") or ""))))
    return _text_frame("item_id", "description", rows)


def descriptions_from_movie_summaries(frame: pd.DataFrame, path: str | Path = MOVIE_SUMMARY_FILE) -> pd.DataFrame:
    """descriptions.parquet rows from the ML-1M ``movie_summary_25_words.csv``."""
    for column in ("movie_id", "summary"):
        if column not in frame.columns:
            raise DataError(path, f"missing column (has {list(frame.columns)})", field=column)
    rows = [(str(i), postprocess_output(str(s) if s == s else "")) for i, s in zip(frame["movie_id"], frame["summary"], strict=True)]
    return _text_frame("item_id", "description", rows)


def profiles_frame(profiles: Mapping[str, str], users: Sequence[str] | None = None) -> pd.DataFrame:
    """profiles.parquet rows: every user of ``users`` (empty profile when none was imported)."""
    keys = [str(u) for u in (users if users is not None else profiles)]
    rows = [(u, postprocess_output(str(profiles.get(u) or ""))) for u in keys]
    frame = _text_frame("user_id", "profile", rows)
    # An empty profile is the documented no-profile variant, not a failure.
    frame.loc[frame["profile"] == "", ["valid", "problem"]] = [True, None]
    return frame


def _text_frame(key: str, column: str, rows: list[tuple[str, str]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=[key, column])
    valid, problems = _guarded(frame[column].tolist())
    frame["source"] = SOURCE
    frame["model"] = IMPORTED_MODEL
    frame["valid"] = pd.Series(valid, dtype=bool)
    frame["problem"] = pd.Series(problems, dtype=object)
    return frame


TARGET_DIFFERS, LABEL_DISAGREES = "target_differs", "label_disagrees"
REASONING_COLUMNS = ["user_id", "split", "target_item", "label", "reasoning", "source", "model",
                     "imported_label", "label_agrees", "target_agrees", "record_index", "valid", "problem"]


def reasoning_frame(
    split: str, records: Sequence[SftRecord], matches: Sequence[Match], samples: pd.DataFrame
) -> pd.DataFrame:
    """reasoning.parquet rows of one split (``samples``: that split's rows, positions as in ``matches``).

    The samples' label is kept; a record whose label disagrees, or whose target is not the sample's
    target (so its reasoning explains another item), is kept but marked ``valid=False``.
    """
    rows = []
    for match in matches:
        record, sample = records[match.record], samples.iloc[match.sample]
        label = int(sample["label"])
        agrees = record.label == label
        # A wrong target or label outranks a cut-off ending: it makes the text unusable.
        problem = (None if match.by_target else TARGET_DIFFERS) or (None if agrees else LABEL_DISAGREES)
        problem = problem or check_output(record.reasoning)
        rows.append({
            "user_id": str(sample["user_id"]),
            "split": split,
            "target_item": str(sample["target_item"]),
            "label": label,
            "reasoning": record.reasoning,
            "source": SOURCE,
            "model": IMPORTED_MODEL,
            "imported_label": record.label,
            "label_agrees": agrees,
            "target_agrees": match.by_target,
            "record_index": record.index,
            "valid": _acceptable(problem),
            "problem": problem,
        })
    frame = pd.DataFrame(rows, columns=REASONING_COLUMNS)
    return frame.astype({"label": "int8", "imported_label": "Int8", "label_agrees": bool, "target_agrees": bool,
                         "valid": bool, "record_index": "int64", "problem": object})


def _text_summary(frame: pd.DataFrame, column: str, key: str) -> dict:
    bad = frame[~frame["valid"]]
    return {
        "count": len(frame),
        "empty": int((frame[column] == "").sum()),
        "invalid": len(bad),
        "problems": count_problems(frame["problem"]),
        "examples": [{key: r[key], "problem": r["problem"], "text": r[column][:200]}
                     for _, r in bad.head(EXAMPLES).iterrows()],
    }


# ---------------------------------------------------------------------------------------------
# Stage
# ---------------------------------------------------------------------------------------------


def texts_dir(params, dataset: str) -> Path:
    """Folder holding a dataset's pre-generated texts (``texts_path``, else ``path`` for paper data)."""
    cfg = params.dataset(dataset)
    relative = cfg.texts_path or (cfg.path if cfg.source == "paper" else None)
    if relative is None:
        from reasoningrec.errors import ConfigError

        raise ConfigError(
            f"dataset {dataset!r}: no texts to import (set datasets.{dataset}.texts_path in params.yaml)"
        )
    folder = params.data_dir / relative
    if not folder.is_dir():
        raise DataError(folder, "texts folder not found (check paths.data_dir / $REASONINGREC_DATA_DIR)")
    return folder


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
            "unmatched_examples": [
                {"record": i, "target": records[i].target_key[:120]} for i in unmatched[:EXAMPLES]
            ],
        }
    if not frames:
        return reasoning_frame("train", [], [], samples.iloc[:0]), summary
    return pd.concat(frames, ignore_index=True), summary


def run_import(params, dataset: str, out_dir: Path | None = None) -> dict:
    """Import a dataset's pre-generated descriptions, profiles and reasoning; write them + import.json."""
    folder = texts_dir(params, dataset)
    out_dir = Path(out_dir) if out_dir is not None else params.work_dir(dataset)
    summary: dict = {"dataset": dataset, "texts_dir": str(folder), "source": SOURCE, "model": IMPORTED_MODEL,
                     "written": []}

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
        summary["descriptions"] = _text_summary(descriptions, "description", "item_id")
        summary["written"].append("descriptions.parquet")

    samples_path = out_dir / "samples.parquet"
    samples = pd.read_parquet(samples_path) if samples_path.exists() else None
    profile_path = folder / PROFILE_FILE
    profiles = {str(k): str(v) for k, v in read_json_map(profile_path).items()} if profile_path.exists() else {}
    if profiles:
        users = None
        if samples is not None:
            users = sorted(samples["user_id"].astype(str).unique(), key=_user_rank(samples["user_id"].astype(str)).get)
        frame = profiles_frame(profiles, users)
        write_parquet(out_dir / "profiles.parquet", frame)
        summary["profiles"] = _text_summary(frame, "profile", "user_id")
        summary["profiles"]["imported"] = len(profiles)
        summary["profiles"]["users_without_profile"] = int((frame["profile"] == "").sum())
        if samples is not None:
            has_items = samples.groupby(samples["user_id"].astype(str))["profile_items"].apply(
                lambda s: any(len(x) for x in s))
            summary["profiles"]["profile_items_but_no_text"] = int(
                sum(bool(has_items.get(u, False)) for u in frame.loc[frame["profile"] == "", "user_id"]))
            summary["profiles"]["imported_users_not_in_samples"] = len(set(profiles) - set(frame["user_id"]))
        summary["written"].append("profiles.parquet")

    if any((folder / SFT_FILE.format(split=s)).exists() for s in SPLITS):
        if samples is None:
            raise DataError(samples_path, "needed to match reasoning records to users: run `reasoningrec prepare` first")
        _require_columns(samples, samples_path)
        reasoning, summary["reasoning"] = import_reasoning(folder, samples, _titles(folder, items_info, out_dir), profiles)
        write_parquet(out_dir / "reasoning.parquet", reasoning)
        summary["written"].append("reasoning.parquet")
    write_json(out_dir / "import.json", summary)
    log.info("imported %s from %s into %s", ", ".join(summary["written"]) or "nothing", folder, out_dir)
    return summary


SAMPLE_COLUMNS = ("user_id", "split", "target_item", "label", "history_items", "history_labels", "profile_items")


def _require_columns(samples: pd.DataFrame, path: Path) -> None:
    missing = [c for c in SAMPLE_COLUMNS if c not in samples.columns]
    if missing:
        raise DataError(path, f"missing columns {missing} (has {list(samples.columns)})")
