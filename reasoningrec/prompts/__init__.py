"""Prompt templates, one file per task × domain (``<task>/<domain>.txt``, jinja2).

Each domain file extends its task's ``_base.txt`` and fills the domain blocks (role, item noun,
verb). A template renders the system message, the line ``<<<user>>>``, then the user message.
Values reach templates already sanitised (:func:`reasoningrec.synthesis.text.sanitize_untrusted`),
which also strips tag-like text, so untrusted data can never forge the ``<<<user>>>`` split.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

DOMAINS = ("movies", "beauty", "fashion", "generic")
USER_SPLIT = "<<<user>>>"
PROMPTS_DIR = Path(__file__).parent
# The synthesis tasks: each folder with a _base.txt template (describe, profile, reason).
TASKS = tuple(sorted(p.name for p in PROMPTS_DIR.iterdir() if (p / "_base.txt").is_file()))


@lru_cache(maxsize=1)
def _environment():
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(PROMPTS_DIR),
        undefined=jinja2.StrictUndefined,  # a missing variable is a bug, not an empty string
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        autoescape=False,  # plain-text prompts; untrusted values are sanitised before rendering
    )


def template_name(task: str, domain: str) -> str:
    if task not in TASKS:
        raise ValueError(f"unknown prompt task {task!r} (expected one of {TASKS})")
    if domain not in DOMAINS:
        raise ValueError(f"unknown prompt domain {domain!r} (expected one of {DOMAINS})")
    return f"{task}/{domain}.txt"


def render(task: str, domain: str, **values) -> tuple[str, str]:
    """Render one prompt; returns ``(system, user)`` message texts."""
    return render_file(template_name(task, domain), **values)


def render_file(name: str, **values) -> tuple[str, str]:
    """Render the template ``name`` (a path under this folder, e.g. ``judge/rubric_v1.txt``); returns
    ``(system, user)`` message texts."""
    text = _environment().get_template(name).render(**values)
    if text.count(USER_SPLIT) != 1:
        raise ValueError(f"prompt {name}: expected one {USER_SPLIT} line")
    system, user = text.split(USER_SPLIT)
    return system.strip(), user.strip()
