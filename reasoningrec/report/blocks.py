"""The report's document model: one block a heading, paragraph, table or image."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Block:
    """One piece of the report, rendered both as Markdown and as HTML."""

    kind: str  # h1 | h2 | h3 | p | table | image
    text: str = ""
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    png: bytes = b""
    file: str = ""
