"""Contexts, per-explanation evidence and the summary, worked out by hand on explain_data's catalogue."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from explain_data import EXPLANATIONS, ITEMS, SAMPLES, frames, vocabulary, write_work

from reasoningrec.config import ExplanationsConfig
from reasoningrec.errors import DataError
from reasoningrec.explanations.context import build_contexts, shown_parts
from reasoningrec.explanations.quality import explanation_metrics
from reasoningrec.methods import VARIANTS
from reasoningrec.records.prompt import ItemText, build_prompt

# trait_max_df 0.2 of 6 items: features of at most one item's text are specific traits.
SETTINGS = ExplanationsConfig(trait_max_df=0.2)


def test_evidence_of_one_explanation():
    _, rows = explanation_metrics(EXPLANATIONS, frames(), vocabulary(), settings=SETTINGS)
    row = rows.iloc[0]
    # Mentions: "Lavender Soap Bar" (core of history item 1), "Vanilla Perfume Oil" (core of the
    # target); "Golden Sun Lotion Deluxe" is a catalogue item the prompt never showed, "Moonlight
    # Velvet Body Mist" a quoted title that exists nowhere: both invented.
    assert row.cited_history_items == ["1"] and row.cited_history_titles == ["Lavender Soap Bar, Pre de Provence"]
    assert row.cited_target
    assert row.grounded_mentions == ["Lavender Soap Bar", "Vanilla Perfume Oil"]
    assert row.invented_items == ["Golden Sun Lotion Deluxe", "Moonlight Velvet Body Mist"]
    # Features outside the mentions: runs [rich, lather] and [warm, vanilla] ("note" is a stop word,
    # "unlike" is in no item text); all six occur in the prompt (items 1 and 4's descriptions).
    assert row.features == ["lather", "rich", "rich lather", "vanilla", "warm", "warm vanilla"]
    assert row.ungrounded_features == []
    # grounding = (2 cited + 6 grounded features) / (2 cited + 2 invented + 6 features)
    assert row.grounding == pytest.approx(0.8)
    assert row.item_grounding == pytest.approx(0.5) and row.feature_grounding == 1.0
    # The target's own description: perfume oil with a warm vanilla note.
    assert row.target_features_named == ["vanilla", "warm", "warm vanilla"] and row.fmr_hit
    # User side = profile (lavender, vanilla, scent) + history texts (rich lather from item 1 ...).
    assert row.traits_cited == ["lather", "rich", "rich lather", "vanilla"]
    assert row.specific_traits_cited == row.traits_cited and row.personalised
    assert row.history_items == ["1", "2", "3"] and row.history_labels == [1, 0, 1]
    assert row.words == 11 + 21 and row.sentences == 2  # the "Prediction: Yes" line is not part of it


def test_summary_by_hand():
    summary, rows = explanation_metrics(EXPLANATIONS, frames(), vocabulary(), settings=SETTINGS)
    # Row 2 is empty (no references: grounding undefined); row 3 names its target only.
    assert math.isnan(rows.grounding[1]) and rows.grounding[2] == 1.0
    assert not rows.personalised[1] and not rows.personalised[2]  # row 3 cites nothing of the user
    assert summary["explanations"] == 3 and summary["empty_explanations"] == 1
    assert summary["grounding"] == pytest.approx((0.8 + 1.0) / 2) and summary["grounding_defined"] == 2
    assert summary["hallucinated_item_rate"] == pytest.approx(2 / 5)  # 2 invented of 4 + 0 + 1 references
    assert summary["hallucinating_share"] == pytest.approx(1 / 3)
    assert summary["personalisation"] == pytest.approx(1 / 3)
    assert summary["fmr"] == pytest.approx(1 / 3)  # item 5 has no own features
    assert summary["history_citation"] == pytest.approx(1 / 3) and summary["target_citation"] == pytest.approx(2 / 3)
    assert summary["fcr"] == pytest.approx(6 / summary["vocabulary_size"])
    assert summary["div"] == 0.0  # only one explanation names features
    assert summary["usr"] == 1.0
    assert all(isinstance(v, float) for v in summary.values())


def test_the_variant_decides_what_the_prompt_showed():
    # TALLRec's prompt shows titles only: the description features (rich lather, warm) are no longer
    # in the prompt, "vanilla" still is (the target's title); the profile is not shown either.
    _, rows = explanation_metrics(EXPLANATIONS.head(1), frames(), vocabulary(), variant="titles", settings=SETTINGS)
    row = rows.iloc[0]
    assert row.grounded_features == ["vanilla"]
    assert row.grounding == pytest.approx((2 + 1) / (2 + 2 + 6))
    assert row.traits_cited == [] and row.personalised  # still cites history item 1 by name


@pytest.mark.parametrize("variant", VARIANTS)
def test_shown_parts_agree_with_build_prompt(variant):
    with_profile, with_details, with_description = shown_parts(variant)
    history = [(1, ItemText("Soap Bar", "Brand: Acme", "Rich lather."))]
    prompt = build_prompt(variant, "beauty", "Likes mild soap.", history, ItemText("Cream", "Brand: Zed", "Thick."))
    assert ("Likes mild soap." in prompt) == with_profile
    assert ("Brand: Acme" in prompt) == with_details
    assert ("Rich lather." in prompt) == with_description


def test_history_kept_drops_the_oldest_items():
    rows = EXPLANATIONS.head(1).assign(history_kept=2)
    (context,) = build_contexts(rows, frames(), {}, "full")
    assert [item.item_id for item in context.history] == ["2", "3"]
    _, out = explanation_metrics(rows, frames(), vocabulary(), settings=SETTINGS)
    # item 1 is gone from the prompt: naming it is now an invented reference
    assert out.cited_history_items[0] == [] and "Lavender Soap Bar" in out.invented_items[0]


def test_work_folder_and_errors(tmp_path):
    write_work(tmp_path)
    summary, _ = explanation_metrics(EXPLANATIONS, tmp_path, vocabulary(), settings=SETTINGS)
    assert summary["explanations"] == 3
    with pytest.raises(DataError, match="missing columns \\['explanation'\\]"):
        explanation_metrics(EXPLANATIONS.drop(columns="explanation"), tmp_path, vocabulary())
    wrong = EXPLANATIONS.assign(target_item=["4", "3", "5"])
    with pytest.raises(DataError, match="row 1, field 'target_item'.*'3' but samples.parquet has '5'"):
        explanation_metrics(wrong, tmp_path, vocabulary())
    with pytest.raises(DataError, match="no sample for user 'u9'"):
        explanation_metrics(EXPLANATIONS.assign(user_id="u9"), tmp_path, vocabulary())
    with pytest.raises(DataError, match="samples.parquet.*not found"):
        explanation_metrics(EXPLANATIONS, tmp_path / "nowhere", vocabulary())
    broken = SAMPLES.assign(history_items=[["1", "99", "3"], ["3"]])
    with pytest.raises(DataError, match="item '99' is not in items.parquet"):
        build_contexts(EXPLANATIONS, type(frames())(samples=broken, items=ITEMS), {}, "full")


def test_no_explanations():
    summary, rows = explanation_metrics(EXPLANATIONS.head(0), frames(), vocabulary())
    assert summary["explanations"] == 0 and math.isnan(summary["grounding"]) and len(rows) == 0
    assert isinstance(rows, pd.DataFrame)
