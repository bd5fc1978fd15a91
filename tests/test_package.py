"""The package ships its typing marker (PEP 561) and declares it as package data."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_py_typed_is_in_the_package_and_declared():
    assert resources.files("reasoningrec").joinpath("py.typed").is_file()
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "py.typed" in pyproject["tool"]["setuptools"]["package-data"]["reasoningrec"]
