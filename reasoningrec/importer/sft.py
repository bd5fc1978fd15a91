"""One instruction-tuning record of the authors' SFT files, parsed: profile, target title, answer, reasoning."""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from reasoningrec.answer import parse_answer
from reasoningrec.errors import DataError
from reasoningrec.synthesis.text import normalize_ws, postprocess_output

_PROFILE = re.compile(r"^\s*User Profile\s*-\s*(.*?)\n\s*User (?:purchased|watched)\b", re.S)
_TARGET_QUOTED = re.compile(r'next target (?:item|movie) - "(.*)" in at ?most \d+ words', re.S)
_TARGET_LINE = re.compile(
    r"(?:will purchase|watched) the next target (?:item|movie) - "
    r"(.*?)(?: Brand: | Price: | Description: | \(Genre: |\n)",
    re.S,
)


def title_key(title: object) -> str:
    """The form titles are compared in: HTML entities decoded, whitespace collapsed, lower case."""
    if title is None or (isinstance(title, float) and title != title):
        return ""
    return normalize_ws(html.unescape(str(title))).lower()


@dataclass(frozen=True)
class SftRecord:
    """One parsed instruction-tuning record."""

    index: int
    profile: str | None  # whitespace-normalised profile text, None when the record has no profile
    target_key: str  # title_key of the target item ("" when it cannot be found)
    text_key: str  # " " + the whole input in title_key form, for history look-ups
    label: int | None  # 1 = "Prediction: Yes", 0 = "No", None = no prediction line
    reasoning: str


def parse_record(record: Mapping, index: int, path: str | Path = "<records>") -> SftRecord:
    """Parse one ``{instruction, input, output}`` record; malformed ones raise :class:`DataError`."""
    for field in ("input", "output"):
        if not isinstance(record.get(field), str):
            raise DataError(path, f"expected a string {field!r} in every record", row=index, field=field)
    text, output = record["input"], record["output"]
    profile = _PROFILE.match(text)
    target = _TARGET_QUOTED.search(text) or _TARGET_LINE.search(text)
    answer = parse_answer(output, anywhere=False)
    return SftRecord(
        index=index,
        profile=normalize_ws(profile.group(1)) if profile else None,
        target_key=title_key(target.group(1)) if target else "",
        text_key=" " + title_key(text),
        label=answer.label,
        reasoning=postprocess_output(answer.reasoning),
    )
