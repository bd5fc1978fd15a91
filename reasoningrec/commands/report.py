"""CLI commands: report stages."""

from __future__ import annotations

from reasoningrec.app import app  # noqa: F401
