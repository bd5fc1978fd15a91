"""What prompts show of the stage files: clipped titles, usable texts only."""

from __future__ import annotations

import pandas as pd

from reasoningrec.records.inputs import MAX_TITLE_CHARS, item_texts, usable_texts


def test_page_long_titles_are_clipped():
    items = pd.DataFrame({"item_id": ["1"], "title": ["#aloha-bb{color:gray} " * 100]})
    text = item_texts(items, None)["1"]
    assert len(text.title) <= MAX_TITLE_CHARS + 4 and text.title.endswith(" ...")


def test_looping_or_echoing_texts_are_not_shown_but_cut_off_ones_are():
    frame = pd.DataFrame(
        {
            "user_id": ["a", "b", "c", "d"],
            "profile": ["Likes dramas.", "Likes drama", "loop loop", "<title>X"],
            "valid": [True, False, False, False],
            "problem": [None, "truncated", "repetitive", "echo"],
        }
    )
    assert usable_texts(frame)["user_id"].tolist() == ["a", "b"]
    assert usable_texts(frame.drop(columns=["problem"]))["user_id"].tolist() == ["a"]
    assert usable_texts(frame.drop(columns=["valid", "problem"])) is not None and usable_texts(None) is None
