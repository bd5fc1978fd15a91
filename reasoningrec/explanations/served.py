"""The evidence of one served explanation: which history items and features it cites, which it invents.

``reasoningrec explain`` asks the champion about a user and *any* item; the prompt it sends is the
user's test-split history and profile with that item as target (:func:`reasoningrec.serving_requests.load_request`).
:func:`served_evidence` checks the explanation against exactly that prompt, with the same rules and
feature vocabulary as the run metrics (:func:`~reasoningrec.explanations.quality.explanation_metrics`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from reasoningrec.errors import DataError
from reasoningrec.explanations.context import DatasetFrames
from reasoningrec.explanations.features import VOCABULARY_FILE, read_vocabulary
from reasoningrec.explanations.quality import explanation_metrics

if TYPE_CHECKING:
    from reasoningrec.config import Params

SPLIT = "test"  # the split whose history and profile the served request uses


@dataclass(frozen=True)
class ServedEvidence:
    """What one explanation cites and invents, against the prompt it was written for."""

    history: list[dict[str, Any]]  # every history item the prompt showed: title, liked, cited
    cited_target: bool
    features: list[str]  # feature terms the explanation names ...
    ungrounded_features: list[str]  # ... of which these appear nowhere in its prompt
    invented_items: list[str]  # item mentions found nowhere in the prompt (as written)
    grounding: float | None  # share of its item references and features found in the prompt (None: neither)
    personalised: bool
    traits_cited: list[str] = field(default_factory=list)

    @property
    def cited_history(self) -> list[dict[str, Any]]:
        return [item for item in self.history if item["cited"]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "history": self.history,
            "cited_target": self.cited_target,
            "features": self.features,
            "ungrounded_features": self.ungrounded_features,
            "invented_items": self.invented_items,
            "grounding": self.grounding,
            "personalised": self.personalised,
            "traits_cited": self.traits_cited,
        }


def with_target(frames: DatasetFrames, user_id: str, item_id: str, split: str = SPLIT) -> DatasetFrames:
    """``frames`` with ``user_id``'s ``split`` sample asking about ``item_id`` (pure: a copy)."""
    samples = frames.samples
    rows = (samples["user_id"].astype(str) == str(user_id)) & (samples["split"] == split)
    if not rows.any():
        raise DataError("samples.parquet", f"user {user_id!r} has no {split!r} sample", field="user_id")
    samples = samples.copy()
    samples.loc[rows, "target_item"] = str(item_id)
    return DatasetFrames(samples, frames.items, frames.descriptions, frames.profiles, frames.reviews)


def served_evidence(
    params: Params, dataset: str, user_id: str, item_id: str, explanation: str, variant: str
) -> ServedEvidence:
    """The evidence of ``explanation``, written for ``user_id``'s test prompt about ``item_id``.

    Reads the dataset's work folder and its feature vocabulary (``feature_vocabulary.json``, built by
    the ``vocabulary`` stage with ``params.explanations.vocabulary``); ``variant`` is the served
    adapter's record variant (what its prompts show).
    """
    folder = params.work_dir(dataset)
    vocabulary = read_vocabulary(folder / VOCABULARY_FILE, params.explanations.vocabulary)
    frames = with_target(DatasetFrames.from_work_dir(folder), user_id, item_id)
    row = pd.DataFrame(
        [{"user_id": str(user_id), "split": SPLIT, "target_item": str(item_id), "explanation": explanation}]
    )
    _, evidence = explanation_metrics(row, frames, vocabulary, variant=variant, settings=params.explanations)
    found = evidence.iloc[0]
    cited = set(found["cited_history_items"])
    history = [
        {"item_id": item, "title": title, "liked": bool(label), "cited": item in cited}
        for item, title, label in zip(
            found["history_items"], found["history_titles"], found["history_labels"], strict=True
        )
    ]
    grounding = float(found["grounding"])
    return ServedEvidence(
        history=history,
        cited_target=bool(found["cited_target"]),
        features=list(found["features"]),
        ungrounded_features=list(found["ungrounded_features"]),
        invented_items=list(found["invented_items"]),
        grounding=None if grounding != grounding else grounding,
        personalised=bool(found["personalised"]),
        traits_cited=list(found["traits_cited"]),
    )
