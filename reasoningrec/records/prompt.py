"""The prompt and completion text of one record (pure), from the templates in ``prompts/records``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from reasoningrec.answer import format_completion
from reasoningrec.errors import ConfigError
from reasoningrec.methods import VARIANTS, Variant


@lru_cache(maxsize=16)
def _template(name: str) -> str:
    return resources.files("reasoningrec.prompts").joinpath("records", name).read_text(encoding="utf-8").strip()


@lru_cache(maxsize=1)
def _roles() -> dict[str, tuple[str, str]]:
    roles = {}
    for line in _template("roles.txt").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            domain, role, noun = (part.strip() for part in line.split("|"))
            roles[domain] = (role, noun)
    return roles


def _words(domain: str) -> dict[str, str]:
    try:
        role, noun = _roles()[domain]
    except KeyError:
        raise ConfigError(f"no recommender role for domain {domain!r} in prompts/records/roles.txt") from None
    return {"role": role, "item": noun, "items": noun + "s"}


@dataclass(frozen=True)
class ItemText:
    """What a prompt says about one item: title, short details (brand, price, genres, year), description."""

    title: str
    details: str = ""
    description: str = ""

    def line(self, with_description: bool) -> str:
        text = self.title + (f" ({self.details})" if self.details else "")
        if with_description and self.description:
            text += f"\n  Description: {self.description}"
        return text


def variant_spec(variant: str) -> Variant:
    """The record variant called ``variant``, or a :class:`ConfigError` listing the known ones."""
    try:
        return VARIANTS[variant]
    except KeyError:
        raise ConfigError(f"unknown record variant {variant!r} (known: {', '.join(VARIANTS)})") from None


def build_prompt(
    variant: str,
    domain: str,
    profile: str,
    history: Sequence[tuple[int, ItemText]],
    target: ItemText,
) -> str:
    """The unrendered prompt text of one record; ``history`` is (label, item) oldest first."""
    spec = variant_spec(variant)
    words = _words(domain)
    if variant == "titles":
        liked = ", ".join(f'"{item.title}"' for label, item in history if label == 1) or "none"
        disliked = ", ".join(f'"{item.title}"' for label, item in history if label != 1) or "none"
        return _template("titles.txt").format(liked=liked, disliked=disliked, target=f'"{target.title}"', **words)

    describe = variant != "no-description"
    parts = [_template("instruction.txt").format(**words)]
    if variant != "no-profile" and profile.strip():
        parts.append(f"User profile:\n{profile.strip()}")
    if history:
        lines = [f"{'Liked' if label == 1 else 'Disliked'}: {item.line(describe)}" for label, item in history]
        parts.append(f"Recent {words['items']} of the user, oldest first:\n" + "\n".join(lines))
    else:
        parts.append(f"Recent {words['items']} of the user: none given.")
    parts.append(f"Target {words['item']}: {target.line(describe)}")
    answer = "answer_reasoning.txt" if spec.with_reasoning else "answer_label.txt"
    parts.append(_template(answer).format(**words))
    return "\n\n".join(parts)


def build_completion(variant: str, label: int, reasoning: str | None) -> str:
    """The answer, plus a newline and the reasoning for the variants trained on reasoning."""
    return format_completion(label, reasoning if variant_spec(variant).with_reasoning else None)
