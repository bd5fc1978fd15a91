"""Explanation metrics as pure functions of sets and token lists (no I/O, no model).

Notation: N explanations; F_i the set of vocabulary features explanation i names; T_i the features
of its target item's own description and reviews; V the feature vocabulary; P_i the features of its
prompt's texts. PETER's four feature metrics follow ``utils.py`` of github.com/lileipisces/PETER
(Li, Zhang & Chen, ACL 2021) function for function; each docstring says where ours differs.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence

_WORD = re.compile(r"[^\W_]+(?:['\u2019\-][^\W_]+)*")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_LETTER = re.compile(r"[^\W\d_]")


# --------------------------------------------------------------------------- per explanation


def words(text: str) -> list[str]:
    """The words of a text, lower-cased: runs of letters/digits, with inner apostrophes and hyphens
    (``long-lasting`` and ``doesn't`` are one word each)."""
    return [w.lower() for w in _WORD.findall(text or "")]


def sentences(text: str) -> list[str]:
    """Sentences: split after ``.``, ``!`` or ``?`` followed by whitespace, and at line breaks;
    fragments without a letter (list numbers such as ``1.``) are dropped."""
    parts = (part.strip() for part in _SENTENCE_END.split(text or ""))
    return [part for part in parts if _LETTER.search(part)]


def ngram_list(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def repeated_ngram_share(tokens: Sequence[str], n: int = 3) -> float:
    """Share of an explanation's n-gram occurrences that repeat an earlier one in the same text:
    ``1 - distinct n-grams / n-grams``. 0 for a text without repeats, near 1 for a loop; NaN when
    the text has fewer than ``n`` words."""
    grams = ngram_list(tokens, n)
    if not grams:
        return math.nan
    return 1.0 - len(set(grams)) / len(grams)


def grounding(cited_items: int, invented_items: int, features: set[str], prompt_features: set[str]) -> float:
    """Share of an explanation's references that its own prompt supports.

    ``(cited + |F ∩ P|) / (cited + invented + |F|)`` where ``cited`` counts the distinct item
    mentions found in the prompt, ``invented`` those that are not, F the named features and P the
    features of the prompt's texts. NaN when the explanation references nothing.
    """
    total = cited_items + invented_items + len(features)
    if total == 0:
        return math.nan
    return (cited_items + len(features & prompt_features)) / total


def share(part: int, whole: int) -> float:
    """``part / whole``, NaN when ``whole`` is 0."""
    return part / whole if whole else math.nan


# --------------------------------------------------------------------------- over explanations


def hallucinated_item_rate(invented: Sequence[int], references: Sequence[int]) -> float:
    """Share of all item references that name an item absent from the explanation's prompt:
    ``Σ invented_i / Σ references_i`` (pooled over explanations); NaN without references."""
    return share(sum(invented), sum(references))


def feature_matching_ratio(features: Sequence[set[str]], target_features: Sequence[set[str]]) -> float:
    """FMR = (1/N) Σ_i 1[F_i ∩ T_i ≠ ∅].

    PETER's ``feature_matching_ratio`` counts an explanation when the single feature of its
    ground-truth review is among its words (``fea in fea_set``); an item here has a set T_i of
    features (its description and reviews), and naming any one of them counts.
    """
    if len(features) != len(target_features):
        raise ValueError(f"{len(features)} feature sets but {len(target_features)} target feature sets")
    if not features:
        return math.nan
    return sum(1 for found, own in zip(features, target_features, strict=True) if found & own) / len(features)


def feature_coverage_ratio(features: Iterable[set[str]], vocabulary_size: int) -> float:
    """FCR = |∪_i F_i| / |V|: the share of the vocabulary that the explanations name at least once
    (PETER's ``feature_coverage_ratio``). It grows with N, so compare it at equal N. NaN for an
    empty vocabulary (a catalogue too small for the document-frequency thresholds)."""
    return share(len(set().union(*features)), vocabulary_size)


def feature_diversity(features: Sequence[set[str]]) -> float:
    """DIV = 2 / (N (N - 1)) Σ_{i<j} |F_i ∩ F_j|: the mean number of features two explanations share
    (PETER's ``feature_diversity``; lower is more diverse).

    Computed as Σ_f C(n_f, 2) / C(N, 2), with n_f the number of explanations naming feature f, which
    equals PETER's double loop in O(Σ|F_i|) instead of O(N²). NaN for fewer than two explanations
    (PETER divides by zero there).
    """
    n = len(features)
    if n < 2:
        return math.nan
    counts = Counter(feature for found in features for feature in found)
    return sum(c * (c - 1) / 2 for c in counts.values()) / (n * (n - 1) / 2)


def unique_sentence_ratio(sequences: Sequence[Sequence[str]]) -> float:
    """USR = |distinct token sequences| / N (PETER's ``unique_sentence_percent``: two sequences are the
    same only when equal token by token). PETER's explanations are one sentence; applied here to
    whole explanations and, separately, to all their sentences pooled."""
    if not sequences:
        return math.nan
    return len({tuple(seq) for seq in sequences}) / len(sequences)


def distinct_n(token_lists: Iterable[Sequence[str]], n: int) -> float:
    """Distinct-n (Li et al., NAACL 2016): distinct n-grams / n-grams, pooled over all explanations;
    NaN when there are none."""
    total, distinct = 0, set()
    for tokens in token_lists:
        grams = ngram_list(tokens, n)
        total += len(grams)
        distinct.update(grams)
    return share(len(distinct), total)


def mean(values: Iterable[float]) -> float:
    """Mean of the finite values; NaN when there are none."""
    finite = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    return sum(finite) / len(finite) if finite else math.nan
