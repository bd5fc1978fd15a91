"""Shared pieces of the sequential baselines: inputs, item vocabulary, encoding, training loop, metrics.

The baselines see the same samples as the LLM methods (``samples.parquet``): at valid/test time a
sample's own ``history_items``/``history_labels`` are the input. They are trained on every position
of each user's chronological sequence before that user's valid target (not K-shot), which is read
from ``interactions.parquet``.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from reasoningrec.errors import DataError

SAMPLE_COLUMNS = ("user_id", "split", "target_item", "target_timestamp", "label", "history_items", "history_labels")
INTERACTION_COLUMNS = ("user_id", "item_id", "rating", "timestamp")
SPLITS = ("train", "valid", "test")

# History-signal vocabulary: 0 = padding, 1 = disliked, 2 = liked, 3 = "this is the target" (SASRec).
PAD, DISLIKE, LIKE, TARGET = 0, 1, 2, 3


# --------------------------------------------------------------------------- inputs


def read_samples(path: Path) -> pd.DataFrame:
    """Read ``samples.parquet`` and check the columns and splits the baselines rely on."""
    frame = _read_parquet(path, SAMPLE_COLUMNS)
    bad = ~frame["split"].isin(SPLITS)
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(path, f"expected one of {SPLITS}, got {frame['split'].iloc[row]!r}", row=row, field="split")
    bad = ~frame["label"].isin([0, 1])
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(path, f"expected 0 or 1, got {frame['label'].iloc[row]!r}", row=row, field="label")
    for row, (items, labels) in enumerate(zip(frame["history_items"], frame["history_labels"], strict=True)):
        if len(items) != len(labels):
            raise DataError(
                path,
                f"history_items has {len(items)} entries but history_labels has {len(labels)}",
                row=row,
                field="history_labels",
            )
    frame = frame.copy()
    frame["user_id"] = frame["user_id"].astype(str)
    frame["target_item"] = frame["target_item"].astype(str)
    frame["label"] = frame["label"].astype(np.int8)
    return frame


def read_interactions(path: Path) -> pd.DataFrame:
    """Read ``interactions.parquet`` (only the columns the baselines use)."""
    frame = _read_parquet(path, INTERACTION_COLUMNS)
    if frame["rating"].isna().any():
        row = int(np.flatnonzero(frame["rating"].isna().to_numpy())[0])
        raise DataError(path, "expected a numeric rating, got null", row=row, field="rating")
    frame = frame[list(INTERACTION_COLUMNS)].copy()
    frame["user_id"] = frame["user_id"].astype(str)
    frame["item_id"] = frame["item_id"].astype(str)
    return frame


def _read_parquet(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "file not found (run `reasoningrec prepare` for this dataset first)")
    frame = pd.read_parquet(path)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(path, f"missing column(s) {missing}; expected at least {list(columns)}")
    return frame


@dataclass(frozen=True)
class UserSequence:
    items: list[str]
    labels: list[int]


def training_sequences(
    interactions: pd.DataFrame, samples: pd.DataFrame, like_threshold: float, source: str = "interactions"
) -> dict[str, UserSequence]:
    """Each user's chronological interactions strictly before their valid target (ties keep file order).

    The valid target is located by (item, timestamp) in the stably time-sorted sequence, so the cut is
    the same one ``prepare`` made. Users without a valid sample are cut at their test target instead;
    users with neither contribute nothing.
    """
    ordered = interactions.reset_index(drop=True)
    ordered = ordered.assign(_order=np.arange(len(ordered))).sort_values(
        ["user_id", "timestamp", "_order"], kind="stable"
    )
    cuts = _cut_points(samples)
    sequences: dict[str, UserSequence] = {}
    for user, group in ordered.groupby("user_id", sort=False):
        cut = cuts.get(user)
        if cut is None:
            continue
        items = group["item_id"].tolist()
        stamps = group["timestamp"].tolist()
        position = next(
            (i for i, (item, ts) in enumerate(zip(items, stamps, strict=True)) if item == cut[0] and ts == cut[1]),
            None,
        )
        if position is None:
            raise DataError(
                source,
                f"user {user!r}: the sample target {cut[0]!r} at {cut[1]} is not among the user's interactions",
                field="item_id",
            )
        labels = (group["rating"].to_numpy()[:position] > like_threshold).astype(int).tolist()
        sequences[str(user)] = UserSequence(items[:position], labels)
    return sequences


def _cut_points(samples: pd.DataFrame) -> dict[str, tuple[str, int]]:
    cuts: dict[str, tuple[str, int]] = {}
    for split in ("test", "valid"):  # valid overrides test
        rows = samples[samples["split"] == split]
        for user, item, ts in zip(rows["user_id"], rows["target_item"], rows["target_timestamp"], strict=True):
            cuts[str(user)] = (str(item), int(ts))
    return cuts


# --------------------------------------------------------------------------- encoding


@dataclass(frozen=True)
class ItemIndex:
    """Item id → embedding row: 0 = padding, 1..n = training items, n + 1 = unknown (OOV)."""

    ids: dict[str, int]

    @classmethod
    def from_sequences(cls, sequences: dict[str, UserSequence]) -> ItemIndex:
        seen = sorted({item for seq in sequences.values() for item in seq.items})
        return cls({item: i + 1 for i, item in enumerate(seen)})

    @property
    def oov(self) -> int:
        return len(self.ids) + 1

    @property
    def size(self) -> int:
        """Rows of the embedding table (padding + items + OOV)."""
        return len(self.ids) + 2

    def lookup(self, items) -> list[int]:
        return [self.ids.get(str(item), self.oov) for item in items]


@dataclass
class Encoded:
    """Model inputs: histories left-padded to ``k`` (most recent item last)."""

    hist_items: np.ndarray  # int64 [N, k]
    hist_signal: np.ndarray  # int64 [N, k]: PAD / DISLIKE / LIKE
    target: np.ndarray  # int64 [N]
    label: np.ndarray  # float32 [N]

    def __len__(self) -> int:
        return len(self.target)


def _pad_row(values: list[int], k: int) -> list[int]:
    values = values[-k:]
    return [0] * (k - len(values)) + values


def encode_training(sequences: dict[str, UserSequence], index: ItemIndex, k: int) -> Encoded:
    """One example per position t >= 1 of each sequence: the up-to-k items before t → the item at t."""
    hist_items, hist_signal, target, label = [], [], [], []
    for user in sorted(sequences):
        seq = sequences[user]
        rows = index.lookup(seq.items)
        signal = [LIKE if lab else DISLIKE for lab in seq.labels]
        for t in range(1, len(rows)):
            hist_items.append(_pad_row(rows[max(0, t - k) : t], k))
            hist_signal.append(_pad_row(signal[max(0, t - k) : t], k))
            target.append(rows[t])
            label.append(seq.labels[t])
    return _encoded(hist_items, hist_signal, target, label, k)


def encode_samples(samples: pd.DataFrame, index: ItemIndex, k: int) -> Encoded:
    """Encode prepared samples with the history each sample shows (its last k items)."""
    hist_items, hist_signal = [], []
    for items, labels in zip(samples["history_items"], samples["history_labels"], strict=True):
        hist_items.append(_pad_row(index.lookup(items), k))
        hist_signal.append(_pad_row([LIKE if int(lab) else DISLIKE for lab in labels], k))
    target = index.lookup(samples["target_item"])
    return _encoded(hist_items, hist_signal, target, samples["label"].tolist(), k)


def _encoded(hist_items, hist_signal, target, label, k: int) -> Encoded:
    return Encoded(
        np.asarray(hist_items, dtype=np.int64).reshape(-1, k),
        np.asarray(hist_signal, dtype=np.int64).reshape(-1, k),
        np.asarray(target, dtype=np.int64),
        np.asarray(label, dtype=np.float32),
    )


# --------------------------------------------------------------------------- metrics


def binary_metrics(labels, p_yes) -> dict[str, float]:
    """AUC, accuracy at 0.5, log loss and ECE of P(like), scored like every other method."""
    from reasoningrec.metrics import classification_metrics

    found = classification_metrics(labels, p_yes)
    return {key: float(found[key]) for key in ("auc", "accuracy", "log_loss", "ece")}


# --------------------------------------------------------------------------- training


def set_seed(seed: int) -> None:
    """Seed python, numpy and torch, and make torch pick deterministic kernels."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


@dataclass(frozen=True)
class FitSettings:
    epochs: int
    patience: int
    learning_rate: float
    batch_size: int
    weight_decay: float
    seed: int


@dataclass
class FitResult:
    best_epoch: int
    best_valid_auc: float
    train_loss: list[float] = field(default_factory=list)
    valid_auc: list[float] = field(default_factory=list)


def _tensors(data: Encoded):
    import torch

    return (
        torch.from_numpy(data.hist_items),
        torch.from_numpy(data.hist_signal),
        torch.from_numpy(data.target),
        torch.from_numpy(data.label),
    )


def predict(model, data: Encoded, batch_size: int = 1024) -> np.ndarray:
    """P(like) for every example, in order."""
    import torch

    model.eval()
    items, signal, target, _ = _tensors(data)
    out = []
    with torch.no_grad():
        for start in range(0, len(data), batch_size):
            end = start + batch_size
            out.append(torch.sigmoid(model(items[start:end], signal[start:end], target[start:end])))
    return torch.cat(out).numpy().astype(float) if out else np.zeros(0)


def fit(
    model,
    train: Encoded,
    valid: Encoded,
    settings: FitSettings,
    on_epoch: Callable[[int, float, float], None] | None = None,
) -> FitResult:
    """Train with BCE on logits; stop early on validation AUC; leave the best weights in ``model``."""
    import torch

    if len(train) == 0:
        raise DataError("samples", "no training examples: every user has fewer than two training interactions")
    generator = torch.Generator().manual_seed(settings.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    items, signal, target, label = _tensors(train)
    result = FitResult(best_epoch=0, best_valid_auc=float("-inf"))
    best_score, best_state, stale = float("-inf"), copy.deepcopy(model.state_dict()), 0
    for epoch in range(1, settings.epochs + 1):
        model.train()
        order = torch.randperm(len(train), generator=generator)
        total = 0.0
        for start in range(0, len(train), settings.batch_size):
            batch = order[start : start + settings.batch_size]
            optimizer.zero_grad()
            loss = loss_fn(model(items[batch], signal[batch], target[batch]), label[batch])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        metrics = binary_metrics(valid.label, predict(model, valid))
        # A validation split with one class has no AUC: fall back to (negative) log loss.
        score = metrics["auc"] if not np.isnan(metrics["auc"]) else -metrics["log_loss"]
        result.train_loss.append(total / len(train))
        result.valid_auc.append(metrics["auc"])
        if on_epoch:
            on_epoch(epoch, result.train_loss[-1], metrics["auc"])
        if score > best_score:
            best_score, best_state, stale = score, copy.deepcopy(model.state_dict()), 0
            result.best_epoch, result.best_valid_auc = epoch, metrics["auc"]
        else:
            stale += 1
            if stale >= settings.patience:
                break
    model.load_state_dict(best_state)
    return result
