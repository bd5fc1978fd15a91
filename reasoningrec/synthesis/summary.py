"""What the synthesis stages write beside their tables: ``describe.json``, ``profile.json``,
``reason.json``. One shared part (backend, settings, validity, token and cache accounting) and the
few counts each stage adds."""

from __future__ import annotations

from typing import Any

from reasoningrec.summary import Summary


class SynthesisSummary(Summary):
    """The part every synthesis stage shares: what generated (backend, model, settings), how many
    outputs passed the guards, a few failures, and the :class:`~reasoningrec.synthesis.generate.Stats`
    accounting (prompts, generations, cache hits, tokens, seconds, retries)."""

    stage: str
    dataset: str
    backend: str
    model: str
    settings: dict[str, float | int | None]  # temperature, top_p, max_new_tokens, seed, words
    limit: int | None
    count: int
    valid: int
    invalid: int
    problems: dict[str, int]
    examples: list[dict[str, Any]]  # key, problem, text (failure_examples)
    prompts: int
    generations: int
    backend_generations: int
    cache_hits: int
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    tokens_per_s: float | None
    retried: int
    fixed_by_retry: int
    first_attempt_problems: dict[str, int]


class DescribeSummary(SynthesisSummary):
    """``describe.json``."""

    items_total: int
    items_with_reviews: int


class ProfileSummary(SynthesisSummary):
    """``profile.json``; ``descriptions_from``: the table the item texts came from."""

    users: int
    users_without_profile_items: int
    descriptions_from: str


class ReasonSummary(SynthesisSummary):
    """``reason.json``; ``with_profile``: users whose prompts carried a profile."""

    users: int
    per_split: dict[str, int]
    with_profile: int


SUMMARIES: dict[str, type[SynthesisSummary]] = {
    "describe": DescribeSummary,
    "profile": ProfileSummary,
    "reason": ReasonSummary,
}
