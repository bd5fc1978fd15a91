"""The answer contract: one tolerant parser for every form models write, one completion layout."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from reasoningrec.answer import ANSWER_PATTERN, format_answer, format_completion, parse_answer, strip_answer

PACKAGE = Path(__file__).resolve().parents[1] / "reasoningrec"


@pytest.mark.parametrize(
    ("text", "label", "reasoning"),
    [
        ("Prediction: Yes\n1. The user likes fragrances.", 1, "1. The user likes fragrances."),
        ("Prediction: No \n The item is too strong.", 0, "The item is too strong."),
        ("prediction:no", 0, ""),
        ("PREDICTION: YES.", 1, ""),
        ("**Prediction:** Yes because", 1, "because"),
        ("**Prediction**: No\nToo strong.", 0, "Too strong."),
        ("Prediction: **Yes**\nBecause it smells nice.", 1, "Because it smells nice."),
        ("## Prediction: Yes\n- gentle scent", 1, "- gentle scent"),
        ("*Prediction: No*\nreason", 0, "reason"),
        ("Prediction - Yes, the user enjoys it.", 1, "the user enjoys it."),
        ("Prediction:\n\nNo\nToo pricey.", 0, "Too pricey."),
        ("Sure! Here is my answer.\nPrediction: Yes\nwhy", 1, "why"),
        ("The user will like Yes Man.", None, "The user will like Yes Man."),
        ("Prediction: Maybe", None, "Prediction: Maybe"),
        ("Noprediction: yes", None, "Noprediction: yes"),
    ],
)
def test_parse_answer_reads_what_models_write(text, label, reasoning):
    answer = parse_answer(text)
    assert (answer.label, answer.reasoning) == (label, reasoning)


def test_leading_only_and_missing_values():
    assert parse_answer("why\nPrediction: Yes", anywhere=False).label is None
    assert strip_answer("Prediction: **Yes**\nBecause it smells nice.") == "Because it smells nice."
    assert strip_answer("No prediction here") == "No prediction here"
    assert strip_answer(None) == "" and strip_answer(float("nan")) == ""
    assert parse_answer(None).label is None


def test_completion_layout():
    assert format_answer(1) == "Prediction: Yes" and format_answer(0) == "Prediction: No"
    assert format_completion(1, "Prediction: Yes\nThe user likes it.") == "Prediction: Yes\nThe user likes it."
    assert format_completion(0, "  ") == "Prediction: No"
    assert format_completion(0, None) == "Prediction: No"
    assert parse_answer(format_completion(1, "reason")).reasoning == "reason"


def test_the_answer_regex_exists_once_in_the_package():
    """No module but reasoningrec/answer.py hands a regex reading 'Prediction' to the re module."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "answer.py" and path.parent == PACKAGE:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            if not (isinstance(node.func.value, ast.Name) and node.func.value.id == "re"):
                continue
            patterns = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            if any("prediction" in p.lower() for p in patterns):
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert offenders == [], offenders
    assert ANSWER_PATTERN.search("Prediction: Yes")
