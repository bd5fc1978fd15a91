"""One benchmark's section of a Markdown document (``docs/performance.md``), replaced in place."""

from __future__ import annotations

from pathlib import Path


def replace_section(text: str, heading: str, section: str, *, first: bool = False) -> str:
    """``text`` with the section under ``heading`` (up to the next ``## `` heading) replaced by
    ``section``; a missing section goes at the end, or before the first section with ``first``."""
    if heading in text:
        before, rest = text.split(heading, 1)
        after = rest.split("\n## ", 1)
        return before + section + ("\n## " + after[1] if len(after) > 1 else "")
    start = text.find("\n## ")
    if first and start >= 0:
        return text[: start + 1] + section + "\n" + text[start + 1 :]
    return text.rstrip("\n") + "\n\n" + section


def write_section(path: Path, heading: str, section: str, *, first: bool = False) -> None:
    """Replace the section of ``path`` atomically, leaving the other sections alone."""
    from reasoningrec.io import atomic_open

    text = path.read_text(encoding="utf-8") if path.is_file() else "# Performance\n\n"
    with atomic_open(path) as handle:
        handle.write(replace_section(text, heading, section, first=first))
