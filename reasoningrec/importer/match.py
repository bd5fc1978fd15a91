"""Matching SFT records (in ascending user order, without user ids) to the rows of ``samples.parquet``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from reasoningrec.importer.sft import SftRecord, title_key
from reasoningrec.synthesis.text import normalize_ws

# Scores of the evidence linking a record to a sample row. A match needs MIN_SCORE: the target title
# alone, or the profile text / the user's target in another split plus half of the history titles.
TARGET_SCORE, SHIFTED_TARGET_SCORE, PROFILE_SCORE, HISTORY_SCORE, CONTRADICTION = 3.0, 2.0, 2.0, 2.0, -2.0
MIN_SCORE = 3.0


@dataclass(frozen=True)
class Match:
    record: int
    sample: int  # positional index into the split's samples frame
    score: float
    by_target: bool  # the record's target title is this sample's target title
    by_profile: bool  # the record's profile text is this user's profile


def user_rank(user_ids: Sequence[str]) -> dict[str, int]:
    """Ascending user order: numeric when every id is an integer, else lexicographic."""
    unique = set(user_ids)
    numeric = all(u.lstrip("-").isdigit() for u in unique)
    ordered = sorted(unique, key=int if numeric else str)
    return {user: rank for rank, user in enumerate(ordered)}


def history_found(
    text_key: str, history: Sequence[str], labels: Sequence[int], memo: dict[tuple[str, int], bool] | None = None
) -> int:
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


def score_candidate(
    record: SftRecord,
    target_match: bool,
    shifted_target: bool,
    history: Sequence[str],
    labels: Sequence[int],
    profile: str | None,
    memo: dict[tuple[str, int], bool] | None = None,
) -> tuple[float, bool]:
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
    rank = user_rank(all_users)
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
            score, p_ok = score_candidate(
                record,
                target_match,
                users[pos] in shifted_users,
                histories[pos],
                history_labels[pos],
                profile_of.get(users[pos]),
                found,
            )
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
