"""Quality guards for generated text: empty, refusing, echoing, repetitive and truncated outputs."""

from __future__ import annotations

import re
from collections.abc import Iterable

EMPTY, TRUNCATED, REFUSAL, ECHO, REPETITIVE = "empty", "truncated", "refusal", "echo", "repetitive"
# Checked in this order; the first found is reported.
PROBLEMS = (EMPTY, REFUSAL, ECHO, REPETITIVE, TRUNCATED)

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
# Loops of a small generator (SmolLM2-135M on ML-100K) score 0.27-0.9; of the paper's Mixtral
# reasoning 2 of 4,500 reach 0.25 (max 0.30), its profiles at most 0.11.
REPEAT_THRESHOLD = 0.25


_TAG = re.compile(r"</?[a-z_]+>", re.I)  # the prompts' <title>/<review> delimiters


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", _TAG.sub(" ", text).lower())


def _ngrams(words: list[str], n: int = _NGRAM) -> set[tuple[str, ...]]:
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def echo_fraction(output: str, reference: str) -> float:
    """Share of the output's word 6-grams that occur verbatim in ``reference``."""
    grams = _ngrams(_words(output))
    if not grams:
        return 0.0
    return len(grams & _ngrams(_words(reference))) / len(grams)


def repetition_fraction(output: str) -> float:
    """Share of the output's word 6-grams that repeat an earlier one (0 for short texts)."""
    words = _words(output)
    total = len(words) - _NGRAM + 1
    if total < 2 * _NGRAM:
        return 0.0
    return 1 - len(_ngrams(words)) / total


def check_output(
    text: str,
    finish_reason: str = "stop",
    instruction: str | None = None,
    echo_threshold: float = 0.5,
    prompt: str | None = None,
    prompt_echo_threshold: float = 0.7,
    repeat_threshold: float | None = None,
) -> str | None:
    """The first problem of a post-processed reply (``empty``/``refusal``/``echo``/``repetitive``/
    ``truncated``) or None.

    ``instruction`` is the fixed template text of the prompt (role + task, without the untrusted
    data): a reply that repeats half of it or more is echoing the template, not answering. ``prompt``
    is the whole prompt (template + data): a reply made mostly (``prompt_echo_threshold``) of its
    6-grams copies the input back (small models list the titles they were given). A reply whose
    6-grams repeat each other (``repeat_threshold``, off by default; the synthesis stages use
    :data:`REPEAT_THRESHOLD`) is stuck in a loop. Refusals count only near the
    start, where models put them; a review quoted later is fine.
    """
    stripped = text.strip()
    if not stripped:
        return EMPTY
    if _REFUSAL.search(stripped[:160]):
        return REFUSAL
    if instruction and echo_fraction(stripped, instruction) >= echo_threshold:
        return ECHO
    if prompt and echo_fraction(stripped, prompt) >= prompt_echo_threshold:
        return ECHO
    if repeat_threshold is not None and repetition_fraction(stripped) >= repeat_threshold:
        return REPETITIVE
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
