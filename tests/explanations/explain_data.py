"""A hand-made six-item catalogue and two users, small enough to work every metric out by hand."""

from __future__ import annotations

import pandas as pd

from reasoningrec.config import VocabularyConfig
from reasoningrec.explanations.context import DatasetFrames
from reasoningrec.explanations.features import build_vocabulary

ITEMS = pd.DataFrame(
    {
        "item_id": ["1", "2", "3", "4", "5", "6"],
        "title": [
            "Lavender Soap Bar, Pre de Provence",
            "Rose Body Lotion for Dry Skin",
            "Mint Shampoo, 16 Fluid Ounce",
            "Vanilla Perfume Oil (1/3 Oz)",
            "Citrus Hand Cream",
            "Golden Sun Lotion Deluxe",  # in the catalogue, never in a prompt below
        ],
        "brand": ["Pre de Provence", "", "", "", "", ""],
    }
)
DESCRIPTIONS = pd.DataFrame(
    {
        "item_id": ["1", "2", "3", "4"],
        "description": [
            "A soap bar with a rich lather and lavender scent.",
            "A thick lotion that soothes dry skin.",
            "A mint shampoo with a cooling tingle.",
            "A perfume oil with a warm vanilla note.",
        ],
        "valid": [True, True, True, True],
    }
)
PROFILES = pd.DataFrame(
    {
        "user_id": ["u1", "u2"],
        "profile": ["Loves lavender and vanilla scents; dislikes greasy lotions.", ""],
        "valid": [True, True],
    }
)
SAMPLES = pd.DataFrame(
    {
        "user_id": ["u1", "u2"],
        "split": ["test", "test"],
        "target_item": ["4", "5"],
        "label": [1, 0],
        "history_items": [["1", "2", "3"], ["3"]],
        "history_labels": [[1, 0, 1], [1]],
    }
)
# Every n-gram of the item texts is a feature (min_df 1, no max_df), so the sets are easy to list.
SETTINGS = VocabularyConfig(min_df=1, max_df=1.0, max_ngram=2)

EXPLANATIONS = pd.DataFrame(
    {
        "user_id": ["u1", "u2", "u2"],
        "split": ["test", "test", "test"],
        "target_item": ["4", "5", "5"],
        "explanation": [
            "Prediction: Yes\nThe user liked the Lavender Soap Bar and its rich lather. This Vanilla Perfume Oil "
            'has a warm vanilla note, unlike the "Golden Sun Lotion Deluxe" and the "Moonlight Velvet Body Mist".',
            "",
            "A nice Citrus Hand Cream.",
        ],
    }
)


def frames() -> DatasetFrames:
    return DatasetFrames(samples=SAMPLES, items=ITEMS, descriptions=DESCRIPTIONS, profiles=PROFILES)


def vocabulary():
    return build_vocabulary(ITEMS, DESCRIPTIONS, None, SETTINGS)


def write_work(folder) -> None:
    """The tables as a dataset work folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in (("samples", SAMPLES), ("items", ITEMS), ("descriptions", DESCRIPTIONS), ("profiles", PROFILES)):
        frame.to_parquet(folder / f"{name}.parquet")
