"""Per-explanation evidence: which history items, target and features an explanation cites, which
items it invented, and the per-explanation metric values built on them.

An item mention (:mod:`reasoningrec.explanations.mentions`) is **grounded** when it names an item
the prompt showed (the target or a history item: its catalogue title, core or prefix, a run of words
of its shown title, or words that all occur in that title, such as "Jane Stone necklace" for "Jane
Stone White Bubble Necklace ...") or when its token sequence occurs anywhere in the prompt's texts
(the profile names items too). A mention of a catalogue item the prompt never showed, or a quoted
title-like text found nowhere in the prompt, is **invented**.
Features are detected outside the item mentions (the words of a cited title are the title's, not
the explanation's feature terms) and are grounded when they are features of the prompt's texts.
"""

from __future__ import annotations

from dataclasses import dataclass

from reasoningrec.explanations import metrics
from reasoningrec.explanations.context import ExplanationContext, PromptItem
from reasoningrec.explanations.features import FeatureVocabulary
from reasoningrec.explanations.mentions import Mention, TitleIndex, mask, title_tokens


@dataclass(frozen=True)
class PromptFeatures:
    """The features of a prompt's texts: all of them, and the user's side (profile + history items)."""

    prompt: frozenset[str]
    user: frozenset[str]

    @classmethod
    def of(cls, context: ExplanationContext, vocabulary: FeatureVocabulary) -> PromptFeatures:
        user = vocabulary.detect(context.profile).union(*(vocabulary.detect(item.text) for item in context.history))
        return cls(frozenset(user | vocabulary.detect(context.target.text)), frozenset(user))


@dataclass(frozen=True)
class Evidence:
    """What one explanation cites, with the per-explanation metric values."""

    words: int
    sentences: int
    repeated_trigram_share: float
    features: frozenset[str]  # vocabulary features named outside item mentions (F)
    grounded_features: frozenset[str]  # F ∩ features of the prompt's texts (P)
    target_features_named: frozenset[str]  # F ∩ the target's own description/review features (T): FMR
    traits_cited: frozenset[str]  # F ∩ features of the profile and history texts
    specific_traits_cited: frozenset[str]  # ... found in at most trait_max_df of all items
    cited_history: tuple[str, ...]  # history item ids the explanation names
    cited_target: bool
    grounded_mentions: tuple[str, ...]  # distinct item mentions found in the prompt
    invented_items: tuple[str, ...]  # distinct item mentions not in the prompt (the text as written)

    @property
    def item_references(self) -> int:
        return len(self.grounded_mentions) + len(self.invented_items)

    @property
    def grounding(self) -> float:
        """:func:`metrics.grounding` of this explanation."""
        return metrics.grounding(
            len(self.grounded_mentions), len(self.invented_items), set(self.features), set(self.grounded_features)
        )

    @property
    def feature_grounding(self) -> float:
        return metrics.share(len(self.grounded_features), len(self.features))

    @property
    def item_grounding(self) -> float:
        return metrics.share(len(self.grounded_mentions), self.item_references)

    @property
    def personalised(self) -> bool:
        """Names a history item or a specific feature of the user's profile/history texts."""
        return bool(self.cited_history or self.specific_traits_cited)

    @property
    def fmr_hit(self) -> bool:
        return bool(self.target_features_named)


def _padded(text: str) -> str:
    return f" {' '.join(title_tokens(text))} "


def _names(mention: Mention, item: PromptItem, title: str, words: frozenset[str]) -> bool:
    """Whether ``mention`` names the prompt item: it is that item's catalogue title (or core or prefix),
    it occurs in the item's shown title, or every one of its words is a word of that title."""
    return item.item_id in mention.items or f" {mention.key} " in title or set(mention.key.split()) <= words


def find_evidence(
    text: str,
    context: ExplanationContext,
    vocabulary: FeatureVocabulary,
    index: TitleIndex,
    prompt_features: PromptFeatures | None = None,
    trait_max_df: float = 0.01,
) -> Evidence:
    """The evidence of one explanation ``text`` (its reasoning, without the prediction line);
    ``trait_max_df``: the largest share of items a user trait may occur in to count as specific."""
    text = text or ""
    prompt_features = prompt_features or PromptFeatures.of(context, vocabulary)
    mentions = index.find(text)
    shown_texts = [_padded(context.profile)] + [_padded(item.text) for item in (*context.history, context.target)]
    titled = [(item, _padded(item.title)) for item in (*context.history, context.target)]
    titled = [(item, title, frozenset(title.split())) for item, title in titled]

    grounded: dict[str, str] = {}
    invented: dict[str, str] = {}
    cited_history: dict[str, None] = {}
    cited_target = False
    for mention in mentions:
        named = [item for item, title, words in titled if _names(mention, item, title, words)]
        if named or any(f" {mention.key} " in part for part in shown_texts):
            grounded.setdefault(mention.key, mention.text)
            for item in named:
                if item is context.target:
                    cited_target = True
                else:
                    cited_history.setdefault(item.item_id)
        else:
            invented.setdefault(mention.key, mention.text)

    features = frozenset(vocabulary.detect(mask(text, mentions)))
    traits = features & prompt_features.user
    tokens = metrics.words(text)
    return Evidence(
        words=len(tokens),
        sentences=len(metrics.sentences(text)),
        repeated_trigram_share=metrics.repeated_ngram_share(tokens, 3),
        features=features,
        grounded_features=features & prompt_features.prompt,
        target_features_named=features & context.target_features,
        traits_cited=traits,
        specific_traits_cited=frozenset(
            f for f in traits if vocabulary.features[f] <= trait_max_df * vocabulary.documents
        ),
        cited_history=tuple(cited_history),
        cited_target=cited_target,
        grounded_mentions=tuple(grounded.values()),
        invented_items=tuple(invented.values()),
    )
