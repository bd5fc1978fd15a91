"""Prompt templates: every task × domain renders, with the paper's structure."""

from __future__ import annotations

import pytest

from reasoningrec.prompts import DOMAINS, TASKS, USER_SPLIT, render

VALUES = {
    "describe": dict(title="T", brand="B", price="$1", genres="", year="", description="", reviews=["r"], words=25),
    "profile": dict(items=[dict(liked=True, title="T", description="d")], words=100),
    "reason": dict(
        profile="p",
        history=[dict(liked=False, title="H", description="")],
        target=dict(title="T", description=""),
        label=1,
        words=100,
    ),
}
ROLES = {
    "movies": "movie critic",
    "beauty": "beauty product recommender",
    "fashion": "fashion product recommender",
    "generic": "recommender",
}


@pytest.mark.parametrize("domain", DOMAINS)
@pytest.mark.parametrize("task", TASKS)
def test_every_template_renders_role_guardrail_and_word_limit(task, domain):
    system, user = render(task, domain, **VALUES[task])
    assert system.startswith(f"You are an expert {ROLES[domain]}")
    assert "Use only the information given" in system and "Use only the information given" in user
    assert f"at most {VALUES[task]['words']} words" in user
    assert USER_SPLIT not in system + user
    assert "{{" not in user and "{%" not in user


def test_missing_value_is_an_error_not_an_empty_string():
    import jinja2

    with pytest.raises(jinja2.UndefinedError):
        render("profile", "beauty", words=100)


def test_unknown_task_or_domain():
    with pytest.raises(ValueError, match="task"):
        render("summarise", "beauty")
    with pytest.raises(ValueError, match="domain"):
        render("describe", "books", **VALUES["describe"])


def test_reason_prompt_states_the_true_label():
    _, liked = render("reason", "movies", **VALUES["reason"])
    _, disliked = render("reason", "movies", **{**VALUES["reason"], "label": 0})
    assert "the user liked the target movie" in liked and "why the user will like" in liked
    assert "the user disliked the target movie" in disliked and "why the user will dislike" in disliked
