"""The progress convention: a bar on a terminal, a few log lines elsewhere, the env override, nesting."""

from __future__ import annotations

import io
import logging

import pytest

from reasoningrec.errors import ConfigError
from reasoningrec.progress import duration, progress, progress_mode, shows_bar, status_line, track


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    """A hand-driven clock: the log cadence is checked without sleeping."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def progress_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "reasoningrec.progress"]


@pytest.fixture(autouse=True)
def default_settings(monkeypatch):
    monkeypatch.delenv("REASONINGREC_PROGRESS", raising=False)
    monkeypatch.delenv("REASONINGREC_PROGRESS_INTERVAL", raising=False)


def test_a_terminal_gets_a_bar_with_rate_and_no_log_lines(caplog):
    caplog.set_level(logging.INFO, logger="reasoningrec.progress")
    screen = FakeTerminal()
    with progress(40, "score", "prompts", file=screen) as bar:
        for _ in range(4):
            bar.update(10)
        bar.set_postfix(loss=0.5)
    shown = screen.getvalue()
    assert bar.display == "bar" and "score" in shown and "40/40" in shown and "prompts/s" in shown
    assert "loss=0.5" in shown
    assert progress_lines(caplog) == []


def test_a_pipe_gets_a_start_and_an_end_line_and_no_bar(caplog):
    caplog.set_level(logging.INFO, logger="reasoningrec.progress")
    pipe = io.StringIO()
    with progress(40, "score", "prompts", file=pipe) as bar:
        bar.update(40)
    assert bar.display == "log" and pipe.getvalue() == ""
    start, end = progress_lines(caplog)
    assert start == "score: 40 prompts"
    assert end.startswith("score: 40 prompts in ") and "prompts/s" in end


def test_a_many_batch_loop_off_a_terminal_writes_a_few_lines(caplog):
    """1,200 batches over 10 minutes of (fake) time: start, one line a minute, end."""
    caplog.set_level(logging.INFO, logger="reasoningrec.progress")
    clock = Clock()
    from reasoningrec.progress import Progress

    with Progress(1200, "explain", "explanations", display="log", stream=io.StringIO(), clock=clock) as bar:
        for _ in range(1200):
            clock.now += 0.5
            bar.update(1)
    lines = progress_lines(caplog)
    assert len(lines) == 1 + 9 + 1  # no minute line at the very end: the end line says it
    assert lines[0] == "explain: 1200 explanations"
    assert lines[1] == "explain: 120/1200 explanations (10%), 2 explanations/s, ETA 9 min 00 s"
    assert lines[-1] == "explain: 1200 explanations in 10 min 00 s (2 explanations/s)"


def test_a_real_many_batch_loop_in_a_pipe_stays_at_two_lines(caplog):
    caplog.set_level(logging.INFO, logger="reasoningrec.progress")
    assert list(track(range(5000), "loop", "batches", file=io.StringIO())) == list(range(5000))
    assert len(progress_lines(caplog)) == 2


def test_env_override_is_read_at_call_time(monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="reasoningrec.progress")
    pipe, screen = io.StringIO(), FakeTerminal()
    monkeypatch.setenv("REASONINGREC_PROGRESS", "always")
    with progress(3, "judge", "replies", file=pipe) as bar:
        bar.update(3)
    assert bar.display == "bar" and "3/3" in pipe.getvalue()
    monkeypatch.setenv("REASONINGREC_PROGRESS", "never")
    with progress(3, "judge", "replies", file=screen) as bar:
        bar.update(3)
    assert bar.display == "log" and screen.getvalue() == "" and len(progress_lines(caplog)) == 2
    monkeypatch.setenv("REASONINGREC_PROGRESS", "sometimes")
    with pytest.raises(ConfigError, match="REASONINGREC_PROGRESS='sometimes'.*auto, always, never"):
        progress_mode()


def test_interval_setting(monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="reasoningrec.progress")
    monkeypatch.setenv("REASONINGREC_PROGRESS_INTERVAL", "0.000001")
    with progress(3, "score", "prompts", file=io.StringIO()) as bar:
        for _ in range(3):
            bar.update(1)
    assert len(progress_lines(caplog)) == 2 + 2  # start, after 1, after 2, end (3 = the end line)
    monkeypatch.setenv("REASONINGREC_PROGRESS_INTERVAL", "soon")
    with pytest.raises(ConfigError, match="REASONINGREC_PROGRESS_INTERVAL='soon'"):
        progress(3, "score", file=io.StringIO())


def test_display_rule():
    assert shows_bar(FakeTerminal(), "auto") and not shows_bar(io.StringIO(), "auto")
    assert shows_bar(io.StringIO(), "always") and not shows_bar(FakeTerminal(), "never")
    closed = io.StringIO()
    closed.close()  # its isatty raises ValueError
    assert not shows_bar(closed, "auto") and not shows_bar(object(), "auto")


def test_no_label_is_silent_and_a_nested_progress_leaves_the_display_to_the_outer_one(caplog):
    caplog.set_level(logging.INFO, logger="reasoningrec.progress")
    with progress(5, None, file=FakeTerminal()) as quiet:
        quiet.update(5)
    assert quiet.display == "silent" and quiet.count == 5 and progress_lines(caplog) == []
    with progress(2, "synthesis", "prompts", file=io.StringIO()) as outer:
        with progress(2, "backend", "prompts", file=io.StringIO()) as inner:
            inner.update(2)
        outer.update(2)
    assert inner.display == "silent" and inner.count == 2
    assert [line.split(":")[0] for line in progress_lines(caplog)] == ["synthesis", "synthesis"]
    with progress(1, "after", file=io.StringIO()) as later:  # the outer one gave the display back
        later.update(1)
    assert later.display == "log"


def test_a_failed_step_says_where_it_stopped(caplog):
    caplog.set_level(logging.INFO, logger="reasoningrec.progress")
    with pytest.raises(RuntimeError), progress(10, "judge", "replies", file=io.StringIO()) as bar:
        bar.update(4)
        raise RuntimeError("server gone")
    assert progress_lines(caplog)[-1].startswith("judge: stopped at 4/10 replies in ")


def test_lines_and_durations():
    assert duration(4.24) == "4.2 s" and duration(425) == "7 min 05 s" and duration(7380) == "2 h 03 min"
    assert status_line("train", 30, 120, "steps", 60.0, 20, {"loss": "0.41"}) == (
        "train: 30/120 steps (25%), 0.333 steps/s, ETA 4 min 30 s, loss 0.41"
    )
    assert status_line("read", 7, None, "rows", 2.0, 7) == "read: 7 rows, 3.5 rows/s"
    assert status_line("read", 21000, None, "rows", 1.0, 21000) == "read: 21000 rows, 21000 rows/s"
    assert (
        status_line("train", 120, 120, "steps", 300.0, 90, final=True) == "train: 120 steps in 5 min 00 s (0.3 steps/s)"
    )


def _read_all(fd: int) -> str:
    """Everything written to a pseudo-terminal so far: one read may return only its first chunk."""
    import os
    import select

    chunks = []
    while select.select([fd], [], [], 0.5)[0]:
        chunks.append(os.read(fd, 65536))
    return b"".join(chunks).decode("utf-8", "replace")


def test_a_terminal_without_a_size_still_gets_a_visible_bar():
    """A fresh pseudo-terminal reports 0 x 0 (``docker run -t``, ``script``): the bar takes a fixed width."""
    import os

    main, side = os.openpty()
    with os.fdopen(side, "w") as screen:
        assert os.get_terminal_size(screen.fileno()).columns == 0
        with progress(3, "score", "prompts", file=screen) as bar:
            bar.update(3)
        screen.flush()
        shown = _read_all(main)
    os.close(main)
    assert bar.display == "bar" and "score: 100%" in shown and "3/3" in shown
