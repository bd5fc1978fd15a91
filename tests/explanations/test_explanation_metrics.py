"""The metric formulas on hand-made cases whose values are worked out in each test."""

from __future__ import annotations

import math
import random

import pytest

from reasoningrec.explanations import metrics


def test_words_and_sentences():
    text = "1. The user likes soap. It is long-lasting!\n2. Yes?"
    # "1." and "2." hold no letter and are not sentences; "long-lasting" is one word.
    assert metrics.sentences(text) == ["The user likes soap.", "It is long-lasting!", "Yes?"]
    assert metrics.words(text) == ["1", "the", "user", "likes", "soap", "it", "is", "long-lasting", "2", "yes"]
    assert metrics.words("") == [] and metrics.sentences("  ") == []


def test_repeated_ngram_share():
    # trigrams: abc bca cab abc -> 4, of which 3 distinct -> 1 - 3/4
    assert metrics.repeated_ngram_share(list("abcabc"), 3) == pytest.approx(0.25)
    assert metrics.repeated_ngram_share(list("abcd"), 3) == 0.0
    assert math.isnan(metrics.repeated_ngram_share(["a", "b"], 3))


def test_grounding():
    # 1 cited item, 1 invented, features {a, b, c} of which only a is in the prompt: (1 + 1) / (1 + 1 + 3)
    assert metrics.grounding(1, 1, {"a", "b", "c"}, {"a", "z"}) == pytest.approx(0.4)
    assert metrics.grounding(0, 0, {"a"}, {"a"}) == 1.0
    assert metrics.grounding(0, 2, set(), {"a"}) == 0.0
    assert math.isnan(metrics.grounding(0, 0, set(), {"a"}))


def test_hallucinated_item_rate_pools_references():
    # (1 + 0 + 2) invented of (2 + 1 + 2) references
    assert metrics.hallucinated_item_rate([1, 0, 2], [2, 1, 2]) == pytest.approx(3 / 5)
    assert math.isnan(metrics.hallucinated_item_rate([0], [0]))


def test_feature_matching_ratio():
    # explanation 1 names a (a feature of its target), 2 names b (its target has c), 3 names nothing
    found = [{"a"}, {"b"}, set()]
    own = [{"a", "x"}, {"c"}, {"a"}]
    assert metrics.feature_matching_ratio(found, own) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="2 feature sets but 1"):
        metrics.feature_matching_ratio([{"a"}, {"b"}], [{"a"}])


def test_feature_coverage_ratio():
    assert metrics.feature_coverage_ratio([{"a", "b"}, {"b", "c"}, set()], 10) == pytest.approx(0.3)
    assert math.isnan(metrics.feature_coverage_ratio([set()], 0))


def test_feature_diversity_by_hand():
    # pairs: (1,2) share a,b = 2; (1,3) share none = 0; (2,3) share c = 1 -> 3 / C(3,2)
    assert metrics.feature_diversity([{"a", "b"}, {"a", "b", "c"}, {"c"}]) == pytest.approx(1.0)
    assert metrics.feature_diversity([{"a"}, {"b"}]) == 0.0
    assert math.isnan(metrics.feature_diversity([{"a"}]))


def _peter_feature_diversity(feature_batch):
    """PETER utils.py feature_diversity, verbatim apart from names."""
    list_len = len(feature_batch)
    total_count = 0
    for i, x in enumerate(feature_batch):
        for j in range(i + 1, list_len):
            total_count += len(x & feature_batch[j])
    return total_count / (list_len * (list_len - 1) / 2)


def test_feature_diversity_equals_peters_double_loop():
    rng = random.Random(7)
    vocabulary = [f"f{i}" for i in range(30)]
    batch = [set(rng.sample(vocabulary, rng.randint(0, 8))) for _ in range(60)]
    assert metrics.feature_diversity(batch) == pytest.approx(_peter_feature_diversity(batch))


def test_unique_sentence_ratio():
    assert metrics.unique_sentence_ratio([["a", "b"], ["a", "b"], ["c"]]) == pytest.approx(2 / 3)
    assert metrics.unique_sentence_ratio([["a", "b"], ["b", "a"]]) == 1.0  # order matters, as in PETER
    assert math.isnan(metrics.unique_sentence_ratio([]))


def test_distinct_n():
    # unigrams a b a b: 2 distinct of 4; bigrams ab ba: 2 of 2
    assert metrics.distinct_n([["a", "b", "a"], ["b"]], 1) == pytest.approx(0.5)
    assert metrics.distinct_n([["a", "b", "a"], ["b"]], 2) == 1.0
    assert math.isnan(metrics.distinct_n([["a"]], 2))


def test_mean_ignores_nan():
    assert metrics.mean([1.0, math.nan, 3.0]) == 2.0
    assert math.isnan(metrics.mean([math.nan]))
