"""Log setup: records reach the stderr of the moment, never a stream that has since been closed."""

from __future__ import annotations

import io
import logging
import sys

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
