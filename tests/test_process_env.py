"""The command line asks PyTorch for huge pages before any command imports torch."""

from __future__ import annotations

import os
import subprocess
import sys

from reasoningrec import cli
from reasoningrec.process_env import THP_ENV, prefer_huge_pages


def test_huge_pages_are_a_default_that_a_set_value_overrides(monkeypatch):
    monkeypatch.setenv(THP_ENV, "")
    monkeypatch.delenv(THP_ENV)
    prefer_huge_pages()
    assert os.environ[THP_ENV] == "1"
    monkeypatch.setenv(THP_ENV, "0")
    prefer_huge_pages()
    assert os.environ[THP_ENV] == "0"


def test_main_sets_it_before_the_command_runs(monkeypatch):
    monkeypatch.setenv(THP_ENV, "")
    monkeypatch.delenv(THP_ENV)
    seen = []
    monkeypatch.setattr(cli, "app", lambda standalone_mode: seen.append(os.environ.get(THP_ENV)) or 0)
    cli.main()
    assert seen == ["1"]


def test_the_command_line_imports_no_torch_before_main():
    """PyTorch reads the setting at its first allocation: importing the CLI must not import torch."""
    code = "import sys, reasoningrec.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
