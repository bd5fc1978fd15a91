"""The method table is the one list of methods: everything else reads it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from reasoningrec import methods
from reasoningrec.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_table_facts():
    assert methods.method("reasoningrec").variant == "full" and methods.method("reasoningrec").fine_tuned
    assert methods.method("tallrec").variant == "titles" and not methods.method("tallrec").explains
    assert not methods.method("zeroshot-vanilla").fine_tuned and methods.method("zeroshot-vanilla").deterministic
    assert methods.method("reasoningrec-no-profile").needs == {"descriptions", "reasoning"}
    assert methods.baseline_names() == ("sasrec", "caser", "user-like-rate", "item-like-rate")
    assert methods.ablations()[0] == "reasoningrec"
    assert methods.competitors()["like-rate heuristic"] == ("user-like-rate", "item-like-rate")
    assert set(methods.names(llm=True)) | set(methods.baseline_names()) == set(methods.METHODS)
    with pytest.raises(ConfigError, match="unknown method 'nope'.*reasoningrec"):
        methods.method("nope")
    with pytest.raises(ConfigError, match="baseline"):
        methods.llm_method("caser")


def _literal_method_lists(path: Path) -> list[str]:
    """Literal tuples/lists/sets/dict keys naming three or more methods."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        elements = (
            node.elts
            if isinstance(node, ast.Tuple | ast.List | ast.Set)
            else (node.keys if isinstance(node, ast.Dict) else [])
        )
        named = [e.value for e in elements if isinstance(e, ast.Constant) and e.value in methods.METHODS]
        if len(named) >= 3:
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_the_method_list_exists_once():
    files = [
        p
        for folder in ("reasoningrec", "flows", "benchmarks", "tools")
        for p in (ROOT / folder).rglob("*.py")
        if (ROOT / folder).is_dir()
    ]
    offenders = [
        hit for path in files if path != ROOT / "reasoningrec" / "methods.py" for hit in _literal_method_lists(path)
    ]
    assert offenders == [], offenders


def test_docs_table_and_cli_help_come_from_the_table():
    from typer.testing import CliRunner

    from reasoningrec.cli import app

    assert methods.markdown_table() in (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    help_text = CliRunner().invoke(app, ["experiment", "--help"], terminal_width=400).output
    for name in methods.names(llm=True):
        assert name in help_text
