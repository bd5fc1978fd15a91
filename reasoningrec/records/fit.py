"""A record rendered with the chat template within the token budget: oldest history items go first."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from reasoningrec.chat import count_tokens, render_example
from reasoningrec.records.prompt import ItemText, build_prompt


@dataclass(frozen=True)
class FittedRecord:
    prompt_text: str
    completion_text: str
    prompt: str
    completion: str
    n_tokens: int
    history_kept: int
    dropped: int


def fit_record(
    tokenizer,
    variant: str,
    domain: str,
    profile: str,
    history: Sequence[tuple[int, ItemText]],
    target: ItemText,
    completion_text: str,
    max_length: int,
) -> FittedRecord:
    """Build and render one record, dropping the oldest history items until it fits ``max_length``.

    The completion is never shortened. If the record does not fit even without history it is
    returned as is (``n_tokens > max_length``) and the caller counts it.
    """
    history = list(history)
    dropped = 0
    while True:
        prompt_text = build_prompt(variant, domain, profile, history, target)
        prompt, completion = render_example(tokenizer, prompt_text, completion_text)
        n_tokens = count_tokens(tokenizer, prompt, completion)
        if n_tokens <= max_length or not history:
            return FittedRecord(prompt_text, completion_text, prompt, completion, n_tokens, len(history), dropped)
        history.pop(0)  # the oldest item goes first
        dropped += 1
