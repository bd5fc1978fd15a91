"""What an explanation's prompt showed: the user's profile, the history items with their labels and
texts, and the target item, rebuilt from a dataset's work folder for (user_id, split, target_item) rows.

Texts are the ones :func:`reasoningrec.records.prompt.build_prompt` shows for the record variant (titles
clipped as in the records, usable descriptions only): ``full`` and ``label-only`` show the profile,
titles, details and descriptions; ``no-profile`` drops the profile; ``no-description`` the
descriptions; ``titles`` (TALLRec) shows titles only. A ``history_kept`` column (from
``records.parquet``) keeps only the newest items of a history that the record stage shortened.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from reasoningrec.data.frames import read_frame
from reasoningrec.errors import ConfigError, DataError
from reasoningrec.methods import VARIANTS
from reasoningrec.records.inputs import item_texts as prompt_item_texts
from reasoningrec.records.inputs import usable_texts
from reasoningrec.records.prompt import ItemText

ROW_COLUMNS = ("user_id", "split", "target_item")


@dataclass(frozen=True)
class PromptItem:
    """One item as a prompt showed it; ``label`` 1 liked / 0 disliked for history items, None for the target."""

    item_id: str
    title: str
    details: str = ""
    description: str = ""
    label: int | None = None

    @property
    def text(self) -> str:
        """Everything the prompt shows of the item."""
        return "\n".join(part for part in (self.title, self.details, self.description) if part)


@dataclass(frozen=True)
class ExplanationContext:
    """The prompt behind one explanation, and the target item's own features (for FMR)."""

    user_id: str
    split: str
    variant: str
    profile: str
    history: tuple[PromptItem, ...]
    target: PromptItem
    target_features: frozenset[str]


@dataclass(frozen=True)
class DatasetFrames:
    """The work-folder tables contexts are built from (``descriptions``/``profiles`` may be absent)."""

    samples: pd.DataFrame
    items: pd.DataFrame
    descriptions: pd.DataFrame | None = None
    profiles: pd.DataFrame | None = None
    reviews: pd.DataFrame | None = None

    @classmethod
    def from_work_dir(cls, work_dir: str | Path) -> DatasetFrames:
        work_dir = Path(work_dir)

        def read(name: str, required: bool, columns: tuple[str, ...]) -> pd.DataFrame | None:
            return read_frame(work_dir / name, columns, "run `reasoningrec ingest` and `prepare`", required=required)

        return cls(
            samples=read(
                "samples.parquet", True, ("user_id", "split", "target_item", "history_items", "history_labels")
            ),
            items=read("items.parquet", True, ("item_id", "title")),
            descriptions=read("descriptions.parquet", False, ("item_id", "description")),
            profiles=read("profiles.parquet", False, ("user_id", "profile")),
            reviews=read("item_reviews.parquet", False, ("item_id", "reviews")),
        )


def shown_parts(variant: str) -> tuple[bool, bool, bool]:
    """(profile, details, descriptions) that a prompt of ``variant`` shows."""
    if variant not in VARIANTS:
        raise ConfigError(f"unknown record variant {variant!r} (known: {', '.join(VARIANTS)})")
    if variant == "titles":
        return False, False, False
    return variant != "no-profile", True, variant != "no-description"


def item_texts(frames: DatasetFrames) -> dict[str, ItemText]:
    """Every item's prompt text (title clipped, details, usable description), as the records show it."""
    return prompt_item_texts(frames.items, frames.descriptions)


def build_contexts(
    rows: pd.DataFrame,
    frames: DatasetFrames,
    item_features: Mapping[str, frozenset[str]],
    variant: str = "full",
    texts: Mapping[str, ItemText] | None = None,
) -> list[ExplanationContext]:
    """One context per row of ``rows`` (``user_id``, ``split``, ``target_item``, optional ``history_kept``).

    ``item_features``: the vocabulary's per-item features (:attr:`FeatureVocabulary.item_features`).
    A row whose (user, split) has no sample, or whose target differs from the sample's, is an error
    naming the row.
    """
    missing = [c for c in ROW_COLUMNS if c not in rows.columns]
    if missing:
        raise DataError("explanations", f"missing columns {missing}; expected {list(ROW_COLUMNS)}")
    with_profile, with_details, with_description = shown_parts(variant)
    texts = texts if texts is not None else item_texts(frames)
    samples = frames.samples
    by_key = {(str(u), str(s)): i for i, (u, s) in enumerate(zip(samples["user_id"], samples["split"], strict=True))}
    profile_of: dict[str, str] = {}
    profiles = usable_texts(frames.profiles)
    if with_profile and profiles is not None:
        profile_of = dict(zip(profiles["user_id"].astype(str), profiles["profile"].fillna("").astype(str), strict=True))
    kept = rows["history_kept"].tolist() if "history_kept" in rows.columns else [None] * len(rows)

    def shown(item_id: str, label: int | None, position: int, field: str) -> PromptItem:
        try:
            text = texts[item_id]
        except KeyError:
            raise DataError(
                "samples.parquet", f"item {item_id!r} is not in items.parquet", row=position, field=field
            ) from None
        return PromptItem(
            item_id,
            text.title,
            text.details if with_details else "",
            text.description if with_description else "",
            label,
        )

    contexts = []
    for position, (user, split, target, keep) in enumerate(
        zip(rows["user_id"].astype(str), rows["split"].astype(str), rows["target_item"].astype(str), kept, strict=True)
    ):
        index = by_key.get((user, split))
        if index is None:
            raise DataError(
                "explanations",
                f"no sample for user {user!r} in split {split!r} (samples.parquet)",
                row=position,
                field="user_id",
            )
        sample = samples.iloc[index]
        if str(sample["target_item"]) != target:
            raise DataError(
                "explanations",
                f"target_item {target!r} but samples.parquet has "
                f"{str(sample['target_item'])!r} for user {user!r}, split {split!r}",
                row=position,
                field="target_item",
            )
        history = [
            shown(str(item), int(label), position, "history_items")
            for item, label in zip(sample["history_items"], sample["history_labels"], strict=True)
        ]
        if keep is not None and not pd.isna(keep):
            history = history[len(history) - int(keep) :] if int(keep) < len(history) else history
        contexts.append(
            ExplanationContext(
                user_id=user,
                split=split,
                variant=variant,
                profile=profile_of.get(user, "").strip(),
                history=tuple(history),
                target=shown(target, None, position, "target_item"),
                target_features=frozenset(item_features.get(target, frozenset())),
            )
        )
    return contexts
