"""The derived columns the suites check, computed with array arithmetic on integer codes.

GX on a pandas source cannot join or group (``UnexpectedRowsExpectation`` needs SQL), so the
facts that need the interactions are computed here: a per-user (and per-item) count for the
k-core suite, and for each sample its target's position in the user's timeline and ``*_ok``
flags for its history and profile lists. Each interaction's position is its rank in its user's
timeline (timestamp, then file order).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from reasoningrec.data.frames import Interactions, codes_of
from reasoningrec.data.kcore import kcore_mask, order_by, repeat_mask

SPLITS = ("train", "valid", "test")


def interactions_of(frame) -> Interactions:
    """:class:`Interactions` from a pandas frame (tests and small tables) or as given."""
    if isinstance(frame, Interactions):
        return frame
    users, user_ids = codes_of(
        pa.array(
            frame["user_id"]
            .astype(object)
            .where(frame["user_id"].notna(), None)
            .map(lambda v: v if v is None else str(v)),
            pa.string(),
        )
    )
    items, item_ids = codes_of(
        pa.array(
            frame["item_id"]
            .astype(object)
            .where(frame["item_id"].notna(), None)
            .map(lambda v: v if v is None else str(v)),
            pa.string(),
        )
    )
    rating = (
        pd.to_numeric(frame["rating"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        if "rating" in frame
        else np.full(len(frame), np.nan)
    )
    stamps = pd.to_numeric(frame["timestamp"], errors="coerce") if "timestamp" in frame else pd.Series(0, frame.index)
    null = stamps.isna().to_numpy()
    return Interactions(
        None,
        users,
        user_ids,
        items,
        item_ids,
        rating,
        stamps.fillna(0).to_numpy(dtype=np.int64),
        null if null.any() else None,
    )


def _valid(data: Interactions) -> np.ndarray:
    valid = (data.users >= 0) & (data.items >= 0)
    return valid if data.timestamp_null is None else valid & ~data.timestamp_null


def timeline_positions(data: Interactions) -> np.ndarray:
    """Per row, its position in the user's timeline (-1 for a row with a null id or timestamp)."""
    valid = np.flatnonzero(_valid(data))
    order = valid[order_by(data.users[valid], data.timestamp[valid])]
    users = data.users[order]
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]]) if len(order) else np.zeros(0, np.int64)
    lengths = np.diff(np.r_[starts, len(order)])
    pos = np.full(len(data), -1, dtype=np.int64)
    pos[order] = np.arange(len(order)) - np.repeat(starts, lengths)
    return pos


def chronological_positions(interactions: pd.DataFrame) -> pd.DataFrame:
    """Each interaction with ``pos``, its rank in the user's timeline (timestamp, then file order)."""
    frame = interactions[["user_id", "item_id", "timestamp", "rating"]].reset_index(drop=True)
    pos = timeline_positions(interactions_of(frame))
    frame = frame[pos >= 0].assign(pos=pos[pos >= 0])
    return frame.iloc[np.argsort(frame["timestamp"].to_numpy(), kind="stable")]  # in time order


def kcore_table(
    data: Interactions, k: int, mode: str, dedup: bool, users=None, items=None, later: np.ndarray | None = None
) -> pd.DataFrame:
    """One row per user (and per item in ``iterative`` mode) with its interactions after the data
    stage's filtering (duplicates out when it drops them, then the k-core) and ``before_kcore``.

    ``users`` / ``items`` (ids) pick the rows to report (default: the ids that survive); an id the
    interactions lack counts 0. ``later`` may pass in the rows that repeat an earlier (user, item,
    timestamp), when the caller has them.
    """
    valid = (data.users >= 0) & (data.items >= 0)
    if dedup:
        later = repeat_mask(data.users, data.items, data.timestamp) if later is None else later
        keep = valid & ~later
    else:
        keep = valid
    keep = kcore_mask(np.maximum(data.users, 0), np.maximum(data.items, 0), keep, k, mode)
    parts = []
    for entity, codes, values, ids in (
        ("user", data.users, data.user_ids, users),
        ("item", data.items, data.item_ids, items),
    ):
        if entity == "item" and mode != "iterative":
            continue
        kept = np.bincount(codes[keep], minlength=len(values))
        raw = np.bincount(codes[valid], minlength=len(values))
        if ids is None:
            chosen = np.flatnonzero(kept)
            chosen = chosen[pc.sort_indices(values.take(pa.array(chosen))).to_numpy()] if len(chosen) else chosen
            names = np.asarray(values.take(pa.array(chosen)).to_numpy(zero_copy_only=False), dtype=object)
            counts, before = kept[chosen], raw[chosen]
        else:
            names = pd.unique(pd.Series(np.asarray(ids, dtype=object)).map(str).to_numpy())
            found = pc.index_in(pa.array(names, pa.string()), value_set=values).fill_null(-1).to_numpy()
            counts = np.where(found >= 0, kept[np.maximum(found, 0)], 0)
            before = np.where(found >= 0, raw[np.maximum(found, 0)], 0)
        parts.append(
            pd.DataFrame(
                {
                    "entity": entity,
                    "id": names,
                    "interactions": counts.astype(np.int64),
                    "before_kcore": before.astype(np.int64),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def kcore_counts(
    kept: pd.DataFrame, mode: str, raw: pd.DataFrame | None = None, users=None, items=None
) -> pd.DataFrame:
    """:func:`kcore_table` for frames already filtered (``kept``), ``raw`` giving ``before_kcore``."""
    data = interactions_of(
        kept.assign(timestamp=kept["timestamp"]) if "timestamp" in kept else kept.assign(timestamp=0)
    )
    table = kcore_table(data, 1, "user" if mode != "iterative" else "iterative", False, users, items)
    if raw is None:
        return table.drop(columns="before_kcore")
    raw_counts = {entity: raw.groupby(column).size() for entity, column in (("user", "user_id"), ("item", "item_id"))}
    table["before_kcore"] = [int(raw_counts[e].get(i, 0)) for e, i in zip(table["entity"], table["id"], strict=True)]
    return table


# ---------------------------------------------------------------------------------------------
# Samples


def _is_list(value) -> bool:
    return isinstance(value, list | tuple | np.ndarray)


def list_column(column: pd.Series, value_type: pa.DataType) -> pa.ListArray:
    """A pandas column of lists as an Arrow list array (a cell that is not a list becomes null)."""
    cells = [list(v) if _is_list(v) else None for v in column]
    try:
        return pa.array(cells, pa.list_(value_type))
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
        if value_type == pa.string():
            return pa.array([None if c is None else [str(x) for x in c] for c in cells], pa.list_(pa.string()))
        numbers = [
            None if c is None else pd.to_numeric(pd.Series(c, dtype=object), errors="coerce").tolist() for c in cells
        ]
        return pa.array(numbers, pa.list_(pa.float64()))


def _lengths(lists: pa.ListArray) -> pd.Series:
    return (
        pd.array(pc.list_value_length(lists).to_numpy(zero_copy_only=False).astype(float), dtype="Float64").astype(
            "Int64"
        )
        if lists.null_count
        else pd.array(pc.list_value_length(lists).to_numpy(zero_copy_only=False), dtype="Int64")
    )


def _code_in(values: pd.Series, dictionary: pa.Array) -> np.ndarray:
    """Codes of ``values`` in ``dictionary`` (-1: null or absent)."""
    try:
        array = pa.array(values, from_pandas=True)
        if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
            array = pc.cast(array, pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        array = pa.array(values.astype(object).map(lambda v: None if pd.isna(v) else str(v)), pa.string())
    return pc.index_in(array, value_set=dictionary).fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)


class _Occurrences:
    """The valid interactions of the given (user, item) pairs, sorted by pair then timeline position."""

    def __init__(self, data: Interactions, pos: np.ndarray, like_threshold: float, pairs: np.ndarray):
        self.n_items = max(len(data.item_ids), 1)
        valid = np.flatnonzero(pos >= 0)
        pair = data.users[valid].astype(np.int64) * self.n_items + data.items[valid]
        used = pd.Series(pair).isin(pairs).to_numpy()
        valid, pair = valid[used], pair[used]
        order = order_by(pair, pos[valid])
        pair, self.pos = pair[order], pos[valid][order]
        self.width = int(self.pos.max()) + 2 if len(self.pos) else 1
        starts = np.flatnonzero(np.r_[True, pair[1:] != pair[:-1]]) if len(pair) else np.zeros(0, np.int64)
        self.pairs = pair[starts]
        rank = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(pair)]))
        self.key = rank * self.width + self.pos
        self.liked = np.r_[0, np.cumsum(data.rating[valid][order] > like_threshold)]

    def before(self, users: np.ndarray, items: np.ndarray, limit: np.ndarray):
        """For each (user, item, position limit): the span of that pair's occurrences before the limit."""
        pair = np.where((users >= 0) & (items >= 0), users * self.n_items + items, -1)
        index = np.searchsorted(self.pairs, pair)
        found = (index < len(self.pairs)) & (self.pairs[np.minimum(index, len(self.pairs) - 1)] == pair) & (pair >= 0)
        base = np.where(found, index, 0) * self.width
        lo = np.searchsorted(self.key, base)
        bound = np.where(np.isnan(limit), 0, np.clip(np.nan_to_num(limit), 0, self.width - 1)).astype(np.int64)
        hi = np.where(found & ~np.isnan(limit), np.searchsorted(self.key, base + bound), lo)
        return lo, hi


def _flat_codes(lists: pa.ListArray, item_ids: pa.Array) -> np.ndarray:
    """Item codes of every list entry, in order (-1: absent from the interactions)."""
    flat = pc.list_flatten(lists.fill_null(pa.scalar([], lists.type))) if lists.null_count else pc.list_flatten(lists)
    return (
        pc.index_in(flat.cast(pa.string()), value_set=item_ids)
        .fill_null(-1)
        .to_numpy(zero_copy_only=False)
        .astype(np.int64)
    )


def _list_facts(
    lists: pa.ListArray,
    labels: pa.ListArray,
    users: np.ndarray,
    target_pos: np.ndarray,
    item_ids: pa.Array,
    occurrences: _Occurrences,
) -> pd.DataFrame:
    """Per sample row, facts about the items of one list column relative to the row's target.

    ``all_before``: every item has an occurrence strictly before the target; ``labels_ok``: each
    such item has an earlier occurrence whose rating agrees with its label; ``last_min`` / ``first_max``:
    the earliest of the items' latest earlier occurrences / the latest of their earliest ones.
    An item rated twice may sit in the profile and again in a window, hence min/max per occurrence.
    """
    n = len(lists)
    lengths = pc.list_value_length(lists).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    offsets = np.r_[0, np.cumsum(lengths)]
    row = np.repeat(np.arange(n), lengths)
    items = _flat_codes(lists, item_ids)
    label_lengths = pc.list_value_length(labels).fill_null(-1).to_numpy(zero_copy_only=False)
    aligned = label_lengths == lengths
    label_start = np.r_[0, np.cumsum(np.maximum(label_lengths, 0))][:-1]
    label_values = pc.list_flatten(labels.fill_null(pa.scalar([], labels.type)) if labels.null_count else labels)
    label_values = (
        pc.cast(label_values, pa.float64()).to_numpy(zero_copy_only=False) if len(label_values) else np.zeros(0)
    )
    entry = np.arange(len(row)) - offsets[row]
    label = np.full(len(row), np.nan)
    ok_rows = aligned[row]
    label[ok_rows] = label_values[(label_start[row] + entry)[ok_rows]]
    lo, hi = occurrences.before(users[row], items.astype(np.int64), target_pos[row])
    count = hi - lo
    before = count > 0
    first = (
        np.where(before, occurrences.pos[np.minimum(lo, len(occurrences.pos) - 1)], np.nan)
        if len(occurrences.pos)
        else np.full(len(row), np.nan)
    )
    last = np.where(before, occurrences.pos[np.maximum(hi - 1, 0)], np.nan) if len(occurrences.pos) else first
    liked = occurrences.liked[hi] - occurrences.liked[lo]
    agrees = np.where(label == 1, liked > 0, np.where(label == 0, count - liked > 0, False))
    bad_label = before & ~agrees
    facts = pd.DataFrame(
        {"all_before": True, "labels_ok": True, "last_min": np.nan, "first_max": np.nan}, index=range(n)
    )
    nonempty = np.flatnonzero(lengths > 0)
    if len(nonempty):
        starts = offsets[nonempty]
        facts.loc[nonempty, "all_before"] = np.logical_and.reduceat(before, starts)
        facts.loc[nonempty, "labels_ok"] = ~np.logical_or.reduceat(bad_label, starts)
        facts.loc[nonempty, "last_min"] = np.fmin.reduceat(last, starts)
        facts.loc[nonempty, "first_max"] = np.fmax.reduceat(first, starts)
    return facts


def samples_frame(
    samples: pd.DataFrame,
    interactions,
    like_threshold: float,
    lists: dict[str, pa.ListArray] | None = None,
    shared_windows: bool = False,
) -> pd.DataFrame:
    """``samples`` plus the derived columns the ``samples`` suite checks (``SAMPLE_CHECK_COLUMNS``).

    Targets are located in the user's timeline by (user, item, timestamp). Where that key repeats
    (duplicates), targets take its occurrences from the latest back, test first: targets are a
    user's last items, so later repeats of a target's key are later targets. A derived flag is
    null where it cannot be judged (target not found, a split missing): each defect counts once.
    ``lists`` may pass the list columns as Arrow arrays (as read from Parquet) to skip a conversion.
    """
    data = interactions_of(interactions)
    pos = timeline_positions(data)
    out = samples.reset_index(drop=True)
    users = _code_in(out["user_id"], data.user_ids)
    targets = _code_in(out["target_item"], data.item_ids)
    stamps = pd.to_numeric(out["target_timestamp"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)

    # The target: (user, item, timestamp) + occurrence, 0 = latest, among the pairs that samples use.
    n_items = max(len(data.item_ids), 1)
    target_pairs = np.where((users >= 0) & (targets >= 0), users * n_items + targets, -1)
    rows = np.flatnonzero(pos >= 0)
    pair = data.users[rows].astype(np.int64) * n_items + data.items[rows]
    rows = rows[pd.Series(pair).isin(target_pairs).to_numpy()]
    lookup = pd.DataFrame(
        {
            "u": data.users[rows].astype(np.int64),
            "i": data.items[rows].astype(np.int64),
            "t": data.timestamp[rows].astype(float),
            "target_pos": pos[rows],
            "observed_rating": data.rating[rows],
        }
    )
    lookup = lookup.iloc[np.argsort(lookup["target_pos"].to_numpy(), kind="stable")]
    lookup["occurrence"] = lookup.groupby(["u", "i", "t"], sort=False).cumcount(ascending=False)
    key = ["user_id", "target_item", "target_timestamp"]
    split_rank = out["split"].map({name: -rank for rank, name in enumerate(SPLITS)}).fillna(1)
    latest_first = out.assign(_rank=split_rank).sort_values("_rank", kind="stable")
    if shared_windows:
        # The paper population's valid/test rows may repeat a train row's target and history: rows that
        # show the same window are one interaction and share an occurrence.
        shown = latest_first.assign(
            _window=latest_first["history_items"].map(
                lambda items: "\x1f".join(map(str, items)) if items is not None else ""
            )
        )
        distinct = shown.drop_duplicates([*key, "_window"])
        distinct = distinct.assign(_occ=distinct.groupby(key, sort=False, dropna=False).cumcount().to_numpy())
        occurrence = shown[[*key, "_window"]].merge(
            distinct[[*key, "_window", "_occ"]], on=[*key, "_window"], how="left"
        )["_occ"]
        occurrence.index = shown.index
        occurrence = occurrence.reindex(out.index)
    else:
        occurrence = latest_first.groupby(key, sort=False, dropna=False).cumcount().reindex(out.index)
    probe = pd.DataFrame(
        {
            "u": np.where(users >= 0, users, -2),
            "i": np.where(targets >= 0, targets, -2),
            "t": stamps,
            "occurrence": occurrence.to_numpy(),
        }
    )
    found = probe.merge(lookup, on=["u", "i", "t", "occurrence"], how="left")
    out["observed_rating"] = found["observed_rating"].to_numpy()
    out["target_pos"] = pd.array(found["target_pos"].to_numpy(dtype=float), dtype="Float64").astype("Int64")
    known = out["target_pos"].notna()

    valid_split = out["split"].where(out["split"].isin(SPLITS))
    out["user_splits"] = valid_split.groupby(out["user_id"]).transform("nunique").astype("Int64")
    wide = (
        out[out["split"].isin(SPLITS)]
        .pivot_table(index="user_id", columns="split", values="target_pos", aggfunc="first")
        .reindex(columns=list(SPLITS))
    )
    ordered = (wide["train"] < wide["valid"]) & (wide["valid"] < wide["test"])
    complete = wide.notna().all(axis=1) & (out.groupby("user_id")["split"].size().reindex(wide.index) == 3)
    out["split_order_ok"] = out["user_id"].map(ordered.astype("boolean").where(complete)).astype("boolean")

    arrays = dict(lists or {})
    for name, kind in (
        ("history_items", pa.string()),
        ("profile_items", pa.string()),
        ("history_labels", pa.float64()),
        ("profile_labels", pa.float64()),
    ):
        if name not in arrays:
            arrays[name] = list_column(out[name], kind)
    for name in ("history", "profile"):
        out[f"{name}_length"] = _lengths(arrays[f"{name}_items"])
        out[f"{name}_labels_length"] = _lengths(arrays[f"{name}_labels"])
    entry_pairs = [
        users[
            np.repeat(
                np.arange(len(out)), pc.list_value_length(arrays[name]).fill_null(0).to_numpy(zero_copy_only=False)
            )
        ]
        * n_items
        + _flat_codes(arrays[name], data.item_ids)
        for name in ("history_items", "profile_items")
    ]
    occurrences = _Occurrences(data, pos, like_threshold, np.concatenate(entry_pairs))  # isin hashes: no unique
    target_pos = out["target_pos"].to_numpy(dtype=float, na_value=np.nan)
    history = _list_facts(
        arrays["history_items"], arrays["history_labels"], users, target_pos, data.item_ids, occurrences
    )
    profile = _list_facts(
        arrays["profile_items"], arrays["profile_labels"], users, target_pos, data.item_ids, occurrences
    )
    out["history_before_target"] = history["all_before"].astype("boolean").where(known)
    out["history_labels_ok"] = (
        history["labels_ok"].astype("boolean").where(known & (out["history_length"] == out["history_labels_length"]))
    )
    precedes_window = (
        history["last_min"].isna() | profile["first_max"].isna() | (profile["first_max"] < history["last_min"])
    )
    out["profile_before_history"] = (profile["all_before"] & precedes_window).astype("boolean").where(known)
    out["profile_labels_ok"] = (
        profile["labels_ok"].astype("boolean").where(known & (out["profile_length"] == out["profile_labels_length"]))
    )
    return out
