"""Item mentions: title keys, unquoted and quoted matches, and what never counts as a mention."""

from __future__ import annotations

from explain_data import ITEMS

from reasoningrec.config import MentionConfig
from reasoningrec.explanations.mentions import TitleIndex, looks_like_title, mask, title_keys


def test_title_keys_whole_core_and_prefix():
    keys = title_keys("Secret Antiperspirant &amp; Deodorant, Soft Solid (2.6 Ounces)", prefix_tokens=5)
    assert keys == {
        ("secret", "antiperspirant", "deodorant", "soft", "solid", "2", "6", "ounces"),  # whole
        ("secret", "antiperspirant", "deodorant"),  # core: before the first comma
        ("secret", "antiperspirant", "deodorant", "soft", "solid"),  # first 5 tokens
    }
    assert title_keys("Gel", 5) == {("gel",)}
    assert title_keys(None, 5) == set()


def test_looks_like_title():
    assert looks_like_title("Women's Classic Trench Coat")
    assert looks_like_title("Love Potion Latte 1/3 oz")
    assert not looks_like_title("runs small, but nice")
    assert not looks_like_title("lovely holiday scent")


def test_unquoted_mentions_need_a_title_like_key_of_three_words():
    index = TitleIndex.from_items(ITEMS)
    found = index.find("I love the lavender soap bar. The Lavender Soap Bar and Citrus Hand Cream, yes.")
    # lower-case "lavender soap bar" is running text; the capitalised core and title are mentions
    assert [(m.key, m.text, m.items, m.quoted) for m in found] == [
        ("lavender soap bar", "Lavender Soap Bar", frozenset({"1"}), False),
        ("citrus hand cream", "Citrus Hand Cream", frozenset({"5"}), False),
    ]
    # A match of at least prefix_tokens words counts however it is written.
    assert [m.items for m in index.find("the golden sun lotion deluxe")] == []
    assert [m.items for m in index.find("lavender soap bar pre de provence")] == [frozenset({"1"})]


def test_quoted_titles_that_match_nothing_are_mentions_without_items():
    index = TitleIndex.from_items(ITEMS, MentionConfig(quoted_min_tokens=3))
    text = 'It is "Moonlight Velvet Body Mist", "runs small" and "Strong Features" says "Golden Sun Lotion Deluxe".'
    found = index.find(text)
    assert [(m.key, m.items, m.quoted) for m in found] == [
        ("moonlight velvet body mist", frozenset(), True),
        ("golden sun lotion deluxe", frozenset({"6"}), False),  # the title matcher finds it first
    ]
    assert "Yes" not in {m.text for m in index.find('"Yes" Prediction: Yes')}


def test_mask_blanks_the_mentions():
    index = TitleIndex.from_items(ITEMS)
    text = "The Citrus Hand Cream is rich."
    assert mask(text, index.find(text)) == "The ||||||||||||||||| is rich."
