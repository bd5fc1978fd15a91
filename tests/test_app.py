"""The CLI's shared helpers."""

from __future__ import annotations

import sys

from reasoningrec.app import invocation


def test_invocation_is_the_command_line_as_retyped(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["/venv/bin/reasoningrec", "experiment", "-d", "my data", "--k", "64"])
    assert invocation() == "reasoningrec experiment -d 'my data' --k 64"
