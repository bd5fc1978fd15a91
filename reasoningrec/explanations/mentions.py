"""Item mentions in an explanation: where it names a catalogue item by its title, or quotes a title.

Titles and explanations are compared as normalised token sequences (:func:`features.normalise`:
case, HTML entities, quotes, hyphens and punctuation do not matter). Each item is known by up to
three keys: its whole title (first :data:`MAX_TITLE_TOKENS` tokens), its *core* (the title before
the first ``,``, ``(``, ``[``, ``|``, ``:`` or `` - ``: "Secret Antiperspirant, Soft Solid, 2.6 Ounces"
-> "Secret Antiperspirant") and, for longer titles, its first ``prefix_tokens`` tokens.

* **Unquoted** mentions: the leftmost-longest runs of explanation tokens equal to a key of at least
  ``min_tokens`` tokens and ``min_chars`` characters, so short titles ("Gel", "Crop Top") never
  match ordinary words; a run shorter than ``prefix_tokens`` tokens must also be written like a
  title (:func:`looks_like_title`), so "nail art stickers" in running text is not the item "Nail Art
  Stickers".
* **Quoted** mentions: a span in double quotes that is not already inside a title match, of
  ``quoted_min_tokens``..``quoted_max_tokens`` tokens, that equals any key, or that *looks like a
  title* (starts with a capital and at least half its words are capitalised or hold digits). Quoted
  phrases in lower case ("runs small") are quotations of text, not item references.

Whether a mention is grounded (found in the explanation's prompt) is decided by
:mod:`reasoningrec.explanations.evidence`; this module only finds the mentions.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from reasoningrec.config import MentionConfig
from reasoningrec.explanations.features import clean, normalise

MAX_TITLE_TOKENS = 40
_TITLE_CHARS = 400  # titles longer than this are scraped page text; their start is enough
_TOKEN = re.compile(r"[a-z0-9]+")
_CORE_END = re.compile(r"[,(\[|:]| - ")
_QUOTED = re.compile(r'"([^"\n]{1,400})"|\u201c([^\u201d\n]{1,400})\u201d')
_END = object()  # trie key holding the items whose key ends at a node


def title_tokens(text: object) -> list[str]:
    """The normalised ``[a-z0-9]+`` tokens of a text."""
    return _TOKEN.findall(normalise(text))


def title_keys(title: object, prefix_tokens: int) -> set[tuple[str, ...]]:
    """The whole title, its core and its prefix as token tuples (empty ones left out)."""
    text = clean(title)[:_TITLE_CHARS]
    whole = tuple(title_tokens(text))[:MAX_TITLE_TOKENS]
    core = tuple(title_tokens(_CORE_END.split(text, maxsplit=1)[0]))[:MAX_TITLE_TOKENS]
    keys = {whole, core}
    if len(whole) > prefix_tokens:
        keys.add(whole[:prefix_tokens])
    return {key for key in keys if key}


def looks_like_title(span: str) -> bool:
    """Starts with a capital letter and at least half its words are capitalised or hold a digit."""
    words = [w for w in re.split(r"\s+", span.strip()) if any(c.isalnum() for c in w)]
    if not words:
        return False
    first = next((c for c in span if c.isalpha()), "")
    if not first.isupper():
        return False
    marked = sum(1 for w in words if w[0].isupper() or any(c.isdigit() for c in w))
    return marked * 2 >= len(words)


@dataclass(frozen=True)
class Mention:
    """One item mention: the normalised token key, the clean text span and the catalogue items it
    names (empty for a quoted title that matches no catalogue title)."""

    key: str
    text: str
    start: int  # character offsets into features.clean(explanation) (= into its normalised form)
    end: int
    items: frozenset[str]
    quoted: bool


class TitleIndex:
    """Every catalogue title's keys, in a token trie (unquoted matches) and a dict (quoted matches)."""

    def __init__(self, titles: Iterable[tuple[str, object]], settings: MentionConfig | None = None):
        self.settings = settings or MentionConfig()
        self._trie: dict = {}
        self._exact: dict[tuple[str, ...], set[str]] = {}
        for item_id, title in titles:
            for key in title_keys(title, self.settings.prefix_tokens):
                self._exact.setdefault(key, set()).add(str(item_id))
                if len(key) >= self.settings.min_tokens and len(" ".join(key)) >= self.settings.min_chars:
                    node = self._trie
                    for token in key:
                        node = node.setdefault(token, {})
                    node.setdefault(_END, set()).add(str(item_id))

    @classmethod
    def from_items(cls, items, settings: MentionConfig | None = None) -> TitleIndex:
        """From an ``items`` frame (``item_id``, ``title``)."""
        return cls(zip(items["item_id"].astype(str), items["title"], strict=True), settings)

    def find(self, text: object) -> list[Mention]:
        """The mentions of ``text``: unquoted title matches, then quoted titles outside them."""
        shown = clean(text)
        normalised = normalise(text)
        if len(normalised) != len(shown):  # a rare character whose lower case is longer
            shown = normalised
        spans = [(m.start(), m.end(), m.group()) for m in _TOKEN.finditer(normalised)]
        tokens = [token for _, _, token in spans]
        mentions = []
        i = 0
        while i < len(tokens):
            node, depth, items, longest = self._trie, 0, set(), 0
            while i + depth < len(tokens) and tokens[i + depth] in node:
                node = node[tokens[i + depth]]
                depth += 1
                if _END in node:
                    items |= node[_END]
                    longest = depth
            start, end = (spans[i][0], spans[i + longest - 1][1]) if longest else (0, 0)
            if longest and (longest >= self.settings.prefix_tokens or looks_like_title(shown[start:end])):
                mentions.append(
                    Mention(
                        " ".join(tokens[i : i + longest]), shown[start:end], start, end, frozenset(items), quoted=False
                    )
                )
                i += longest
            else:
                i += 1
        mentions.extend(self._quoted(shown, normalised, mentions))
        return sorted(mentions, key=lambda m: m.start)

    def _quoted(self, shown: str, normalised: str, found: list[Mention]) -> list[Mention]:
        out = []
        for match in _QUOTED.finditer(shown):
            group = 1 if match.group(1) is not None else 2
            start, end = match.start(group), match.end(group)
            if any(m.start < end and start < m.end for m in found):
                continue  # the quote holds (or overlaps) a title already matched
            key = tuple(_TOKEN.findall(normalised[start:end]))
            if not self.settings.quoted_min_tokens <= len(key) <= self.settings.quoted_max_tokens:
                continue
            items = self._exact.get(key)
            if items is None and not looks_like_title(shown[start:end]):
                continue
            out.append(
                Mention(" ".join(key), shown[start:end].strip(), start, end, frozenset(items or ()), quoted=True)
            )
        return out


def mask(text: object, mentions: Iterable[Mention]) -> str:
    """``clean(text)`` with every mention's span replaced by ``|`` (a segment break), so the features
    inside a cited title are not counted as the explanation's own feature terms."""
    shown = clean(text)
    if len(normalise(text)) != len(shown):
        shown = normalise(text)
    chars = list(shown)
    for mention in mentions:
        chars[mention.start : mention.end] = "|" * (mention.end - mention.start)
    return "".join(chars)
