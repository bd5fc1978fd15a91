"""Prompt and completion text per record variant."""

from __future__ import annotations

import pytest
from records_data import HISTORY, PROFILE, TARGET

from reasoningrec.records.prompt import build_completion, build_prompt


def test_full_prompt_has_every_section_oldest_first():
    text = build_prompt("full", "beauty", PROFILE, HISTORY, TARGET)
    assert text.startswith("You are an expert beauty product recommender.")
    assert PROFILE in text and "A light fig scent" in text and "A creamy coconut wash." in text
    assert text.index("Fresh Eau De Parfum") < text.index("Harsh Shampoo") < text.index("Monoi Oil")
    assert "Liked: Fresh Eau De Parfum (Brand: Fresh)" in text and "Disliked: Harsh Shampoo" in text
    assert '"Prediction: Yes"' in text and "100 words" in text


def test_ablations_and_tallrec_drop_what_they_should():
    no_profile = build_prompt("no-profile", "beauty", PROFILE, HISTORY, TARGET)
    no_desc = build_prompt("no-description", "beauty", PROFILE, HISTORY, TARGET)
    titles = build_prompt("titles", "movies", PROFILE, HISTORY, TARGET)
    label_only = build_prompt("label-only", "beauty", PROFILE, HISTORY, TARGET)
    assert PROFILE not in no_profile and "A light fig scent" in no_profile
    assert PROFILE in no_desc and "A light fig scent" not in no_desc and "Brand: Fresh" in no_desc
    assert 'User Preference: "Fresh Eau De Parfum", "Monoi Oil"' in titles
    assert 'User Unpreference: "Harsh Shampoo"' in titles and "target movie" in titles
    assert PROFILE not in titles and "fig" not in titles
    assert PROFILE in label_only and "100 words" not in label_only


def test_completions():
    assert build_completion("full", 1, "Prediction: Yes\n 1. Likes coconut.") == "Prediction: Yes\n1. Likes coconut."
    assert build_completion("no-profile", 0, "Too strong.") == "Prediction: No\nToo strong."
    assert build_completion("titles", 1, "ignored") == "Prediction: Yes"
    assert build_completion("label-only", 0, None) == "Prediction: No"


def test_unknown_variant_or_domain_is_a_config_error():
    from reasoningrec.errors import ConfigError

    with pytest.raises(ConfigError, match="variant"):
        build_prompt("bogus", "beauty", "", HISTORY, TARGET)
    with pytest.raises(ConfigError, match="domain"):
        build_prompt("full", "cars", "", HISTORY, TARGET)
