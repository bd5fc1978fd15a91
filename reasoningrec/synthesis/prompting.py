"""Pure prompt builders for the three synthesis tasks (no I/O, no model).

Every untrusted value (titles, reviews, descriptions, profiles) passes through
:func:`sanitize_untrusted` here, with a word cap, before it reaches a template.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from reasoningrec.prompts import render
from reasoningrec.synthesis.text import sanitize_untrusted

# Word caps on untrusted inputs: enough for the model to work with, bounded so that one long review
# or description cannot crowd the instruction out of a small model's context.
TITLE_WORDS = 40
META_WORDS = 12
EXISTING_DESCRIPTION_WORDS = 120
ITEM_DESCRIPTION_WORDS = 60
PROFILE_WORDS = 200
DEFAULT_WORDS = {"describe": 25, "profile": 100, "reason": 100}


@dataclass(frozen=True)
class Prompt:
    """A chat conversation plus its fixed template text (used to detect echoing replies)."""

    messages: tuple[tuple[str, str], ...]  # (role, content) pairs, hashable
    instruction: str

    def as_messages(self) -> list[dict[str, str]]:
        return [{"role": role, "content": content} for role, content in self.messages]


@dataclass(frozen=True)
class ItemText:
    """An item as the profile/reason prompts show it."""

    title: str
    description: str = ""
    liked: bool = True


def _clean(value: object, words: int) -> str:
    return sanitize_untrusted(value, max_words=words)


def _year(value: object) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    try:
        return str(int(value))
    except (TypeError, ValueError):
        return _clean(value, 2)


def _prompt(task: str, domain: str, values: dict) -> Prompt:
    system, user = render(task, domain, **values)
    return Prompt(
        messages=(("system", system), ("user", user)), instruction=_instruction(task, domain, values["words"])
    )


@lru_cache(maxsize=64)
def _instruction(task: str, domain: str, words: int) -> str:
    """The template's own text: the prompt rendered with every data field empty."""
    blank = {
        "describe": dict(title="", brand="", price="", genres="", year="", description="", reviews=[]),
        "profile": dict(items=[]),
        "reason": dict(profile="", history=[], target={"title": "", "description": ""}, label=1),
    }[task]
    system, user = render(task, domain, words=words, **blank)
    return f"{system}\n{user}"


def describe_prompt(
    item: Mapping,
    reviews: Sequence[str],
    domain: str,
    words: int | None = None,
    review_words: int = 50,
    max_reviews: int = 10,
) -> Prompt:
    """Prompt for a short description from an item's metadata and sampled reviews.

    ``item`` holds items.parquet fields (title, brand, price, genres, year, description); genres are
    ``|``-joined. Reviews beyond ``max_reviews`` are dropped, each cut to ``review_words`` words.
    """
    genres = item.get("genres")
    genres = ", ".join(g for g in str(genres).split("|") if g) if isinstance(genres, str) else ""
    values = {
        "title": _clean(item.get("title"), TITLE_WORDS),
        "brand": _clean(item.get("brand"), META_WORDS),
        "price": _clean(item.get("price"), META_WORDS),
        "genres": _clean(genres, META_WORDS * 2),
        "year": _year(item.get("year")),
        "description": _clean(item.get("description"), EXISTING_DESCRIPTION_WORDS),
        "reviews": [r for r in (_clean(r, review_words) for r in list(reviews)[:max_reviews]) if r],
        "words": words or DEFAULT_WORDS["describe"],
    }
    return _prompt("describe", domain, values)


def _items(items: Sequence[ItemText]) -> list[dict]:
    return [
        {
            "title": _clean(i.title, TITLE_WORDS),
            "description": _clean(i.description, ITEM_DESCRIPTION_WORDS),
            "liked": bool(i.liked),
        }
        for i in items
    ]


def profile_prompt(items: Sequence[ItemText], domain: str, words: int | None = None) -> Prompt:
    """Prompt for a user profile (likes and dislikes) from the user's profile items."""
    if not items:
        raise ValueError("a profile prompt needs at least one item (users without any get no LLM call)")
    return _prompt("profile", domain, {"items": _items(items), "words": words or DEFAULT_WORDS["profile"]})


def reason_prompt(
    profile: str,
    history: Sequence[ItemText],
    target: ItemText,
    label: int,
    domain: str,
    words: int | None = None,
) -> Prompt:
    """Prompt for reasoning that explains the TRUE ``label`` (1 = liked) of ``target``."""
    if label not in (0, 1):
        raise ValueError(f"label must be 0 or 1, got {label!r}")
    values = {
        "profile": _clean(profile, PROFILE_WORDS),
        "history": _items(history),
        "target": _items([target])[0],
        "label": int(label),
        "words": words or DEFAULT_WORDS["reason"],
    }
    return _prompt("reason", domain, values)
