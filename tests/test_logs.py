"""Log setup: records reach the stderr of the moment, never a stream that has since been closed."""

from __future__ import annotations

import io
import logging
import os
import sys

import pytest

from reasoningrec.logs import setup_logging


def test_a_replaced_stderr_receives_the_records(monkeypatch):
    first = io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    saved = logging.getLogger().handlers[:], logging.getLogger("reasoningrec").level
    try:
        setup_logging("INFO")
        logging.getLogger("reasoningrec.test").info("one")
        first.close()  # e.g. a CLI runner's capture that ended
        second = io.StringIO()
        monkeypatch.setattr(sys, "stderr", second)
        logging.getLogger("reasoningrec.test").info("two")
        assert second.getvalue().rstrip().endswith("INFO reasoningrec.test: two")
    finally:
        logging.getLogger().handlers[:] = saved[0]
        logging.getLogger("reasoningrec").setLevel(saved[1])


@pytest.mark.parametrize(("mode", "third_party_bars"), [("auto", False), ("never", False), ("always", True)])
def test_third_party_bars_follow_the_progress_rule(mode, third_party_bars, monkeypatch):
    for name in ("TQDM_DISABLE", "HF_HUB_DISABLE_PROGRESS_BARS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REASONINGREC_PROGRESS", mode)
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal
    saved = logging.getLogger().handlers[:], logging.getLogger("reasoningrec").level
    try:
        setup_logging("INFO")
    finally:
        logging.getLogger().handlers[:] = saved[0]
        logging.getLogger("reasoningrec").setLevel(saved[1])
    assert ("TQDM_DISABLE" not in os.environ) is third_party_bars
    assert ("HF_HUB_DISABLE_PROGRESS_BARS" not in os.environ) is third_party_bars


def test_a_user_setting_wins(monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "0")
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    saved = logging.getLogger().handlers[:], logging.getLogger("reasoningrec").level
    try:
        setup_logging("INFO")
    finally:
        logging.getLogger().handlers[:] = saved[0]
        logging.getLogger("reasoningrec").setLevel(saved[1])
    assert os.environ["TQDM_DISABLE"] == "0"
