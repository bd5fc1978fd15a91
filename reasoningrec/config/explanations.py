"""Settings of the explanation-quality metrics (docs/explanations.md)."""

from __future__ import annotations

from pydantic import Field

from reasoningrec.config.base import Section
from reasoningrec.config.generation import LLMConfig


class VocabularyConfig(Section):
    """How the feature vocabulary is extracted from item texts (reasoningrec/explanations/features.py)."""

    # Longest n-gram of adjacent content words that can be a feature (1 = single words, PETER's case).
    max_ngram: int = Field(2, ge=1, le=3)
    # A feature occurs in at least min_df items' texts (drops typos, model numbers) and in at most
    # max_df of them as a share (drops words every item's text uses).
    min_df: int = Field(3, ge=1)
    max_df: float = Field(0.1, gt=0, le=1)
    min_chars: int = Field(3, ge=1)


class MentionConfig(Section):
    """How item mentions are found in explanations (reasoningrec/explanations/mentions.py)."""

    # An unquoted title match needs this many words and characters (so "Yes" or "Crop Top" never match).
    min_tokens: int = Field(3, ge=1)
    min_chars: int = Field(12, ge=1)
    # The first prefix_tokens words of a longer title also name it ("Pre de Provence Artisanal French ...").
    prefix_tokens: int = Field(5, ge=2)
    # A quoted span of this many words that looks like a title and matches nothing in the prompt is an
    # invented item; longer quotes are taken as quoted sentences, not titles.
    quoted_min_tokens: int = Field(3, ge=1)
    quoted_max_tokens: int = Field(30, ge=1)


class JudgeConfig(Section):
    """The optional LLM judge of explanations (reasoningrec/explanations/judge.py); off by default."""

    enabled: bool = False
    rubric: str = "v1"  # reasoningrec/prompts/judge/rubric_<rubric>.txt
    llm: LLMConfig = LLMConfig(backend="openai", model="mistralai/Mixtral-8x7B-Instruct-v0.1")
    temperature: float = Field(0.0, ge=0)
    max_new_tokens: int = Field(64, ge=8)
    seed: int = 0
    limit: int | None = Field(50, ge=1)  # explanations judged per run; null = all


class ExplanationsConfig(Section):
    """Explanation-quality metrics beyond BERTScore (docs/explanations.md)."""

    vocabulary: VocabularyConfig = VocabularyConfig()
    mentions: MentionConfig = MentionConfig()
    # A user trait is evidence of personalisation only when it is specific: a feature of the user's
    # profile/history texts found in at most this share of all items (not "comfort" or "style").
    trait_max_df: float = Field(0.01, gt=0, le=1)
    judge: JudgeConfig = JudgeConfig()
