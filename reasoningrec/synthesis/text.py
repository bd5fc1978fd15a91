"""Text hygiene shared by prompt building, output post-processing and the importer.

Untrusted text (reviews, titles, descriptions, earlier LLM outputs) goes into prompts only through
:func:`sanitize_untrusted`, which is what keeps it from breaking out of its delimiting tags.
"""

from __future__ import annotations

import html
import re

from reasoningrec.answer import strip_answer

# C0/C1 control characters (except tab/newline/CR, which collapse to spaces anyway), zero-width and
# bidi-override characters: invisible in a terminal, but able to hide or reorder prompt text.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")
# Anything that looks like an opening/closing tag: untrusted text must not close our delimiters.
_TAG = re.compile(r"</?\s*[A-Za-z_][\w\-]*\s*/?>")
_WS = re.compile(r"\s+")

ELLIPSIS = " …"


def normalize_ws(text: str) -> str:
    """Collapse every run of whitespace into one space and strip the ends."""
    return _WS.sub(" ", text).strip()


def sanitize_untrusted(text: object, max_words: int | None = None) -> str:
    """Make untrusted text safe to embed between delimiters in a prompt.

    HTML entities are decoded (Amazon titles carry ``&amp;``), control and invisible characters
    dropped, tag-like sequences removed (so ``</review>`` inside a review cannot end its block),
    triple quotes flattened, whitespace collapsed, and the result cut to ``max_words`` words with a
    visible ellipsis. ``None``/NaN become the empty string.
    """
    if text is None or (isinstance(text, float) and text != text):
        return ""
    clean = html.unescape(str(text))
    clean = _CONTROL.sub(" ", clean)
    clean = _TAG.sub(" ", clean)
    clean = clean.replace('"""', '"').replace("```", "'")
    clean = normalize_ws(clean)
    if max_words is not None:
        words = clean.split(" ")
        if len(words) > max_words:
            clean = " ".join(words[:max_words]) + ELLIPSIS
    return clean


# Leading boilerplate LLMs put before the answer. Each pattern is anchored at the start and removed
# repeatedly, so "Sure! Here is the description: Product description: ..." loses all three.
_BOILERPLATE = [
    re.compile(r"^(sure|certainly|of course|okay|ok|absolutely)\b[^.!:\n]{0,60}[.!:]\s*", re.I),
    re.compile(r"^here(?:'s| is| are)\b[^:\n]{0,80}:\s*", re.I),
    re.compile(
        r"^(?:\*\*)?(?:concise |short |brief )?(?:product|movie|item|user|the)?\s*"
        r"(?:description|summary|profile|reasoning|explanation|answer|response|output)(?:\*\*)?\s*[:\-]\s*",
        re.I,
    ),
]


_STRIPPERS = [*(lambda text, p=pattern: p.sub("", text, count=1) for pattern in _BOILERPLATE), strip_answer]


def postprocess_output(text: str) -> str:
    """Strip leading boilerplate, surrounding quotes and extra whitespace from an LLM reply.

    Nothing is truncated: a reply that is too long or cut off is reported by the guards instead.
    """
    clean = normalize_ws(_CONTROL.sub(" ", text or ""))
    changed = True
    while changed and clean:
        changed = False
        for strip in _STRIPPERS:
            stripped = strip(clean)
            if stripped != clean:
                clean, changed = stripped.strip(), True
    if len(clean) >= 2 and clean[0] == clean[-1] and clean[0] in "\"'" and clean.count(clean[0]) == 2:
        clean = clean[1:-1].strip()
    return clean


def word_count(text: str) -> int:
    return len(text.split())
