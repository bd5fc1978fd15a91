"""The method table: every method the product runs, defined once.

Records, experiments, baselines, the grid, the report, the CLI help and the docs read this table;
no other module lists method names. A method is an LLM method (scored with P(Yes) on records of
one *variant*, fine-tuned with LoRA or asked zero-shot) or a baseline (``reasoningrec baselines``).

Record variants (the prompt/completion layout, :mod:`reasoningrec.records`):

=================  ==========================================  ====================================
variant            prompt                                      completion
=================  ==========================================  ====================================
full               profile + history with descriptions         prediction + reasoning
no-profile         history with descriptions                   prediction + reasoning
no-description     profile + history, titles and details only  prediction + reasoning
titles (TALLRec)   titles of liked / disliked items, target    prediction only
label-only         as full                                     prediction only
=================  ==========================================  ====================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from reasoningrec.errors import ConfigError

Family = Literal["reasoningrec", "ablation", "tallrec", "zero-shot", "sequential", "heuristic"]
Input = Literal["descriptions", "profiles", "reasoning"]


@dataclass(frozen=True)
class Variant:
    """A record layout: the synthesised inputs its prompts/completions read, and whether its
    completion carries reasoning after the prediction (the model then writes explanations)."""

    name: str
    needs: frozenset[str]
    with_reasoning: bool


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("full", frozenset({"descriptions", "profiles", "reasoning"}), True),
        Variant("no-profile", frozenset({"descriptions", "reasoning"}), True),
        Variant("no-description", frozenset({"profiles", "reasoning"}), True),
        Variant("titles", frozenset(), False),
        Variant("label-only", frozenset({"descriptions", "profiles"}), False),
    )
}


@dataclass(frozen=True)
class Method:
    """One method: its name (the ``method`` tag of its MLflow runs), family and how it runs.

    ``variant``: the record variant of an LLM method (None for baselines). ``fine_tuned``: trained
    with LoRA on K records (else K is 0). ``competitor``: the baseline group fine-tuned ReasoningRec
    is judged against in the report (None for ReasoningRec itself and its ablations).
    ``deterministic``: the same result for every seed, so it runs once.
    """

    name: str
    family: Family
    label: str
    variant: str | None = None
    fine_tuned: bool = False
    competitor: str | None = None
    deterministic: bool = False

    @property
    def is_llm(self) -> bool:
        return self.variant is not None

    @property
    def needs(self) -> frozenset[str]:
        """Synthesised inputs (descriptions/profiles/reasoning) the method's records read."""
        return VARIANTS[self.variant].needs if self.variant else frozenset()

    @property
    def explains(self) -> bool:
        """Whether the method writes an explanation after its prediction."""
        return bool(self.variant) and VARIANTS[self.variant].with_reasoning


# In report order.
METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("reasoningrec", "reasoningrec", "ReasoningRec", "full", fine_tuned=True),
        Method("reasoningrec-no-profile", "ablation", "ReasoningRec w/o profile", "no-profile", fine_tuned=True),
        Method(
            "reasoningrec-no-description", "ablation", "ReasoningRec w/o description", "no-description", fine_tuned=True
        ),
        Method("label-only", "ablation", "ReasoningRec, answer only", "label-only", fine_tuned=True),
        Method("tallrec", "tallrec", "TALLRec", "titles", fine_tuned=True, competitor="TALLRec"),
        Method(
            "zeroshot-reasoningrec",
            "zero-shot",
            "zero-shot, ReasoningRec prompt",
            "full",
            competitor="zero-shot",
            deterministic=True,
        ),
        Method(
            "zeroshot-vanilla",
            "zero-shot",
            "zero-shot, titles prompt",
            "titles",
            competitor="zero-shot",
            deterministic=True,
        ),
        Method("sasrec", "sequential", "SASRec", competitor="SASRec"),
        Method("caser", "sequential", "Caser", competitor="Caser"),
        Method("user-like-rate", "heuristic", "user like-rate", competitor="like-rate heuristic", deterministic=True),
        Method("item-like-rate", "heuristic", "item like-rate", competitor="like-rate heuristic", deterministic=True),
    )
}

# The ablations table of the report: full ReasoningRec and what each ablation leaves out.
ABLATION_BASE = "reasoningrec"


def method(name: str) -> Method:
    """The method called ``name``, or a :class:`ConfigError` listing every known one."""
    try:
        return METHODS[name]
    except KeyError:
        raise ConfigError(f"unknown method {name!r} (known: {', '.join(METHODS)})") from None


def llm_method(name: str) -> Method:
    """An LLM method (scored on records), or a clear error pointing baselines to their command."""
    found = method(name)
    if not found.is_llm:
        known = ", ".join(m.name for m in METHODS.values() if m.is_llm)
        raise ConfigError(f"{name!r} is a baseline, run by `reasoningrec baselines` (LLM methods: {known})")
    return found


def names(*, family: str | None = None, llm: bool | None = None, fine_tuned: bool | None = None) -> tuple[str, ...]:
    """Method names in table order, optionally filtered."""
    return tuple(
        m.name
        for m in METHODS.values()
        if (family is None or m.family == family)
        and (llm is None or m.is_llm == llm)
        and (fine_tuned is None or m.fine_tuned == fine_tuned)
    )


def baseline_names() -> tuple[str, ...]:
    """The methods ``reasoningrec baselines`` produces."""
    return names(llm=False)


def ablations() -> tuple[str, ...]:
    """Full ReasoningRec followed by its ablations."""
    return (ABLATION_BASE, *names(family="ablation"))


def competitors() -> dict[str, tuple[str, ...]]:
    """Report competitor group -> its methods, in table order."""
    groups: dict[str, list[str]] = {}
    for m in METHODS.values():
        if m.competitor:
            groups.setdefault(m.competitor, []).append(m.name)
    return {group: tuple(members) for group, members in groups.items()}


def help_text(*, llm: bool | None = None) -> str:
    """The method names for CLI help strings."""
    return ", ".join(names(llm=llm))


def markdown_table() -> str:
    """The methods as a Markdown table (docs/architecture.md embeds it; a test keeps them equal)."""
    lines = [
        "| method | family | record variant | fine-tuned | synthesised inputs | explains |",
        "|---|---|---|---|---|---|",
    ]
    for m in METHODS.values():
        inputs = ", ".join(sorted(m.needs)) or "—"
        lines.append(
            f"| `{m.name}` | {m.family} | {m.variant or '—'} | {'yes' if m.fine_tuned else 'no'} "
            f"| {inputs} | {'yes' if m.explains else 'no'} |"
        )
    return "\n".join(lines)
