"""Quality guards for generated text: empty, truncated, refusing and template-echoing outputs."""

from __future__ import annotations

import re
from collections.abc import Iterable

EMPTY, TRUNCATED, REFUSAL, ECHO = "empty", "truncated", "refusal", "echo"
PROBLEMS = (EMPTY, REFUSAL, ECHO, TRUNCATED)  # checked in this order; the first found is reported

# Only at the start of a sentence and unquoted: '"I Can't Sleep" is a French drama' is a title.
_REFUSAL = re.compile(
    r"(?:^|[.!?]\s+)(?:i['’]?m sorry|i am sorry|i apologi[sz]e|as an ai\b|as a language model|i cannot|i can['’]?t\b|"
    r"i['’]?m (?:not able|unable)|i am (?:not able|unable)|i do not have enough information|"
    r"i don['’]?t have enough information)\b",
    re.I,
)
# A reply ends properly with terminal punctuation, possibly inside closing quotes/brackets.
_SENTENCE_END = re.compile(r"[.!?…][\"'”’)\]*]*$")
_NGRAM = 6


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def _ngrams(words: list[str], n: int = _NGRAM) -> set[tuple[str, ...]]:
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def echo_fraction(output: str, reference: str) -> float:
    """Share of the output's word 6-grams that occur verbatim in ``reference``."""
    grams = _ngrams(_words(output))
    if not grams:
        return 0.0
    return len(grams & _ngrams(_words(reference))) / len(grams)


def check_output(
    text: str,
    finish_reason: str = "stop",
    instruction: str | None = None,
    echo_threshold: float = 0.5,
) -> str | None:
    """The first problem of a post-processed reply (``empty``/``refusal``/``echo``/``truncated``) or None.

    ``instruction`` is the fixed template text of the prompt (role + task, without the untrusted
    data): a reply that repeats half of it or more is echoing the template, not answering.
    Refusals count only near the start, where models put them; a review quoted later is fine.
    """
    stripped = text.strip()
    if not stripped:
        return EMPTY
    if _REFUSAL.search(stripped[:160]):
        return REFUSAL
    if instruction and echo_fraction(stripped, instruction) >= echo_threshold:
        return ECHO
    if finish_reason == "length" or not _SENTENCE_END.search(stripped):
        return TRUNCATED
    return None


def count_problems(problems: Iterable[str | None]) -> dict[str, int]:
    """Counts per problem kind (every kind present, zeros included)."""
    counts = dict.fromkeys(PROBLEMS, 0)
    for problem in problems:
        if isinstance(problem, str) and problem:
            counts[problem] = counts.get(problem, 0) + 1
    return counts
