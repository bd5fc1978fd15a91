"""The feature vocabulary: normalisation, n-grams, document-frequency thresholds, storage."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from reasoningrec.config import VocabularyConfig
from reasoningrec.errors import DataError
from reasoningrec.explanations import features as F


def test_normalise_keeps_positions_and_reads_entities():
    text = "Women's Long-Lasting Soap &amp; Co"
    assert F.clean(text) == "Women's Long-Lasting Soap & Co"
    assert F.normalise(text) == "women   long lasting soap & co"
    assert len(F.normalise(text)) == len(F.clean(text))
    assert F.segments("Dry skin, soft (not sticky).") == [["dry", "skin"], ["soft"], ["not", "sticky"]]


def test_content_tokens_and_plural_folding():
    assert F.is_content("zipper", 3) and not F.is_content("the", 3) and not F.is_content("x1", 1)
    assert not F.is_content("great", 3)  # an opinion word, on the stop list
    assert not F.is_content("user", 3)  # recommendation talk
    assert F.plural_forms(["brushes", "brush", "gloss", "berries", "berry", "shoes", "shoe"]) == {
        "brushes": "brush",
        "berries": "berry",
        "shoes": "shoe",
    }


def test_ngrams_stop_at_stop_words_and_punctuation():
    grams = F.ngrams("Dry skin and long-lasting scents, soft", max_ngram=2, min_chars=3, forms={"scents": "scent"})
    # runs: [dry, skin] | and | [long, lasting, scent] | , | [soft]
    assert grams == {"dry", "skin", "dry skin", "long", "lasting", "scent", "long lasting", "lasting scent", "soft"}


ITEMS = pd.DataFrame(
    {
        "item_id": ["1", "2", "3", "4"],
        "title": ["Zipper Hoodie", "Zipper Jacket", "Cotton Scarf", "Wool Scarf"],
        "description": [None, "", None, None],
    }
)
DESCRIPTIONS = pd.DataFrame(
    {
        "item_id": ["1", "2", "3", "4"],
        "description": ["A warm hoodie with deep pockets.", "Deep pockets, warm lining.", "Soft cotton.", "junk"],
        "valid": [True, True, True, False],  # item 4's text is unusable: left out, as in the records
    }
)
REVIEWS = pd.DataFrame({"item_id": ["3"], "reviews": [["Nice pockets on this scarf!"]]})


def test_build_vocabulary_by_hand():
    vocabulary = F.build_vocabulary(ITEMS, DESCRIPTIONS, REVIEWS, VocabularyConfig(min_df=2, max_df=0.5, max_ngram=2))
    # Document frequencies (titles + usable descriptions + reviews):
    #   zipper 2 (1, 2); warm 2 (1, 2); deep 2; pockets 3 (1, 2 and 3's review; no "pocket" to fold
    #   onto); deep pockets 2; scarf 2 (3, 4); cotton 1; hoodie 1; jacket 1; lining 1; soft 1; wool 1.
    # max_df 0.5 of 4 items = 2, so pockets (3) is too common; min_df 2 drops the singletons.
    assert dict(vocabulary.features) == {"zipper": 2, "warm": 2, "deep": 2, "deep pockets": 2, "scarf": 2}
    assert vocabulary.documents == 4
    # Own features come from descriptions and reviews, not titles.
    assert vocabulary.item_features["1"] == {"warm", "deep", "deep pockets"}
    assert vocabulary.item_features["3"] == {"scarf"} and vocabulary.item_features["4"] == frozenset()
    assert vocabulary.detect("Warm, with DEEP pockets and a zipper") == {"warm", "deep", "deep pockets", "zipper"}
    # A plural the items never wrote still folds onto a feature.
    assert vocabulary.detect("two scarves? no: scarfs") == {"scarf"}


def test_vocabulary_is_deterministic_and_round_trips(tmp_path):
    one = F.build_vocabulary(ITEMS, DESCRIPTIONS, REVIEWS)
    two = F.build_vocabulary(ITEMS.iloc[::-1], DESCRIPTIONS.iloc[::-1], REVIEWS)
    assert one.digest == two.digest
    path = F.write_vocabulary(tmp_path / "v.json", one)
    back = F.read_vocabulary(path, VocabularyConfig())
    assert back.digest == one.digest and back.item_features == one.item_features
    stored = json.loads(path.read_text())
    assert stored["method_version"] == F.METHOD_VERSION and stored["stopwords_digest"] == F.stopwords_digest()


def test_read_vocabulary_rejects_edits_versions_and_other_settings(tmp_path):
    path = F.write_vocabulary(tmp_path / "v.json", F.build_vocabulary(ITEMS, DESCRIPTIONS, REVIEWS))
    with pytest.raises(DataError, match="settings"):
        F.read_vocabulary(path, VocabularyConfig(min_df=1))
    data = json.loads(path.read_text())
    data["features"]["invented"] = 9
    (tmp_path / "edited.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match="edited.json.*digest"):
        F.read_vocabulary(tmp_path / "edited.json")
    data["method_version"] = 0
    (tmp_path / "old.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match="method version 0"):
        F.read_vocabulary(tmp_path / "old.json")
    (tmp_path / "other.json").write_text("{}")
    with pytest.raises(DataError, match="not a feature vocabulary"):
        F.read_vocabulary(tmp_path / "other.json")
    with pytest.raises(DataError, match="not found"):
        F.read_vocabulary(tmp_path / "missing.json")


def test_bad_inputs_name_the_file():
    with pytest.raises(DataError, match="items.parquet"):
        F.build_vocabulary(pd.DataFrame({"item_id": ["1"]}))
    with pytest.raises(DataError, match="item_reviews.parquet.*reviews"):
        F.build_vocabulary(ITEMS, None, pd.DataFrame({"item_id": ["1"], "text": ["x"]}))
