"""The answer contract: how a completion states its prediction, and how every reader finds it.

A completion is ``Prediction: Yes`` or ``Prediction: No``, then (for the variants trained on
reasoning) a newline and the reasoning. Training records, imported ground truth, synthesis guards,
explanations and scoring all read and write this layout through this module, so it is defined once.

Models do not always write it verbatim: :data:`ANSWER_PATTERN` accepts markdown emphasis and headings
(``**Prediction:** Yes``, ``**Prediction**: Yes``, ``Prediction: **No**``, ``## Prediction: Yes``), any
case, a dash instead of the colon and any whitespace (newlines included) around the parts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

ANSWER_PREFIX = "Prediction:"
ANSWER_WORDS = {1: "Yes", 0: "No"}

# Markdown leaders (bullets, headings, emphasis), "prediction", optional closing emphasis, a colon or
# dash, optional opening emphasis, the answer word, optional closing emphasis and one punctuation mark.
ANSWER_PATTERN = re.compile(
    r"[>#*_`\s-]*(?<![a-z])prediction[*_`]*\s*[:\-\u2013]\s*[*_`]*\s*(?P<word>yes|no)\b[*_`]*[ \t]*[.:;,!]?[*_`]*",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Answer:
    """A parsed completion: ``label`` 1 (Yes), 0 (No) or None (no prediction), and the reasoning."""

    label: int | None
    reasoning: str

    @property
    def parsed(self) -> bool:
        return self.label is not None


def format_answer(label: int) -> str:
    """``Prediction: Yes`` for label 1, ``Prediction: No`` for 0."""
    return f"{ANSWER_PREFIX} {ANSWER_WORDS[int(label == 1)]}"


def format_completion(label: int, reasoning: str | None = None) -> str:
    """The completion of one record: the answer, then a newline and the reasoning when there is one.

    A reasoning text that starts with its own prediction (imported ground truth does) loses it first.
    """
    text = strip_answer(reasoning)
    return f"{format_answer(label)}\n{text}" if text else format_answer(label)


def parse_answer(text: Any, *, anywhere: bool = True) -> Answer:
    """Split a completion into (label, reasoning).

    ``anywhere``: the first prediction anywhere in the text counts (a model may write a preamble);
    otherwise only one at the very start. The reasoning is the text after the prediction, or the
    whole text when there is none. Missing values (None, NaN from Parquet) give ``Answer(None, "")``.
    """
    if not isinstance(text, str):
        return Answer(None, "")
    match = ANSWER_PATTERN.search(text) if anywhere else ANSWER_PATTERN.match(text)
    if match is None:
        return Answer(None, text.strip())
    return Answer(int(match.group("word").lower() == "yes"), text[match.end() :].strip())


def strip_answer(text: Any) -> str:
    """The reasoning of a text without a leading prediction ("" for a missing text)."""
    return parse_answer(text, anywhere=False).reasoning


# ---------------------------------------------------------------------------------------------
# Answer tokens
# ---------------------------------------------------------------------------------------------


def answer_token_ids(tokenizer) -> tuple[int, int]:
    """Ids of the answer tokens that follow ``Prediction:`` in a rendered assistant turn: (yes, no).

    Resolved by encoding the rendered ``Prediction: Yes`` / ``Prediction: No`` continuations and taking
    the first token where they differ (for SmolLM2 that is " Yes"/" No" with the leading space, not the
    bare "Yes"). Raises :class:`ConfigError` when either answer is not one whole token, when both are
    the same token, or when the prefix does not end on a token boundary (the scorer would then read
    the wrong position).
    """
    from reasoningrec.chat import render_chat
    from reasoningrec.errors import ConfigError

    base = render_chat(tokenizer, "Will the user like the target item?")
    prefix_ids = _encode(tokenizer, base + ANSWER_PREFIX)
    yes_ids = _encode(tokenizer, f"{base}{format_answer(1)}\n")
    no_ids = _encode(tokenizer, f"{base}{format_answer(0)}\n")
    name = getattr(tokenizer, "name_or_path", type(tokenizer).__name__)
    at = _common_prefix(yes_ids, no_ids)
    if at >= min(len(yes_ids), len(no_ids)):
        raise ConfigError(f"tokenizer {name}: '{format_answer(1)}' and '{format_answer(0)}' encode alike")
    yes_id, no_id = yes_ids[at], no_ids[at]
    for word, token in ((ANSWER_WORDS[1], yes_id), (ANSWER_WORDS[0], no_id)):
        if tokenizer.decode([token]).strip() != word:
            raise ConfigError(
                f"tokenizer {name}: the answer after {ANSWER_PREFIX!r} must be one token, but {word!r} "
                f"starts with {tokenizer.decode([token])!r} (id {token})"
            )
    if yes_ids[:at] != prefix_ids:
        raise ConfigError(
            f"tokenizer {name}: {ANSWER_PREFIX!r} does not end on a token boundary before the answer "
            f"({len(prefix_ids)} prefix tokens vs {at} shared), so P(Yes) cannot be read at one position"
        )
    return int(yes_id), int(no_id)


def _encode(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text)["input_ids"])


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n
