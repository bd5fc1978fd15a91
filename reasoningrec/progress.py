"""Progress of every long step: a bar on a terminal, a few log lines anywhere else.

One convention for training, scoring, explanations, BERTScore, synthesis and the judge::

    with progress(len(prompts), "score", "prompt") as bar:
        for batch in batches:
            ...
            bar.update(len(batch))

* ``desc=None`` gives a silent counter: a step that is also called on a hot path (serving scores one
  request at a time) takes a ``progress`` label and shows nothing without one.
* When stderr is a terminal: a tqdm bar with count, rate and ETA (``set_postfix`` adds values such as
  the training loss).
* Otherwise (CI, ``nohup``, a log collector): no bar, only INFO lines on the ``reasoningrec.progress``
  logger, so they follow ``REASONINGREC_LOG_LEVEL`` and ``REASONINGREC_LOG_FORMAT``: one when the
  step starts, at most one every :data:`DEFAULT_INTERVAL` seconds while it runs (count, percent,
  rate, ETA) and one when it ends (count, elapsed, rate). A step shorter than the interval writes two
  lines.
* A progress opened while another one is active in the same thread is silent: the outer step owns the
  display (synthesis counts prompts over all its chunks; the backend underneath does not start a bar
  per chunk, and validation scoring between training epochs does not break the training bar).

Read at call time, not at import: ``REASONINGREC_PROGRESS`` = ``auto`` (default: bar only on a
terminal), ``always`` (a bar even when stderr is not a terminal, e.g. a notebook or ``script``),
``never`` (never a bar, the log lines only; ``REASONINGREC_LOG_LEVEL=WARNING`` silences those too);
``REASONINGREC_PROGRESS_INTERVAL`` = seconds between log lines (default 60).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from typing import Any, TextIO, TypeVar

from reasoningrec.errors import ConfigError

log = logging.getLogger(__name__)

MODE_ENV = "REASONINGREC_PROGRESS"
INTERVAL_ENV = "REASONINGREC_PROGRESS_INTERVAL"
MODES = ("auto", "always", "never")
DEFAULT_INTERVAL = 60.0  # seconds between log lines when there is no bar: a 7-minute epoch gives ~7
FALLBACK_COLUMNS, FALLBACK_ROWS = 100, 24  # the bar's size on a terminal that reports a size of 0

T = TypeVar("T")
_active: ContextVar[Progress | None] = ContextVar("reasoningrec_progress", default=None)
_bars_lock = threading.Lock()
_bars_open = 0
_log_redirect = None  # while bars are open, log records are written above them instead of through them


def _bar_opened() -> None:
    global _bars_open, _log_redirect
    with _bars_lock:
        if _bars_open == 0:
            from tqdm.contrib.logging import logging_redirect_tqdm

            _log_redirect = logging_redirect_tqdm()
            _log_redirect.__enter__()
        _bars_open += 1


def _bar_closed() -> None:
    global _bars_open, _log_redirect
    with _bars_lock:
        _bars_open -= 1
        if _bars_open == 0 and _log_redirect is not None:
            _log_redirect.__exit__(None, None, None)
            _log_redirect = None


def progress_mode() -> str:
    """``REASONINGREC_PROGRESS`` (``auto`` when unset); a clear error for anything else."""
    mode = os.environ.get(MODE_ENV, "auto").strip().lower() or "auto"
    if mode not in MODES:
        raise ConfigError(f"{MODE_ENV}={os.environ[MODE_ENV]!r}: expected one of {', '.join(MODES)}")
    return mode


def log_interval() -> float:
    """``REASONINGREC_PROGRESS_INTERVAL`` in seconds (default :data:`DEFAULT_INTERVAL`)."""
    raw = os.environ.get(INTERVAL_ENV, "").strip()
    if not raw:
        return DEFAULT_INTERVAL
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise ConfigError(f"{INTERVAL_ENV}={raw!r}: expected a positive number of seconds")
    return seconds


def is_terminal(stream) -> bool:
    """Whether ``stream`` is an interactive terminal (False for anything without a working isatty)."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        return False


def _terminal_columns(stream) -> int | None:
    """The terminal's width; None where it cannot be asked (tqdm then finds its own); 0 for a
    pseudo-terminal without a size (``docker run -t``, ``script``), where a width-following bar is empty."""
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError):
        return None


def shows_bar(stream, mode: str | None = None) -> bool:
    """The display rule: ``always`` -> bar, ``never`` -> log lines, ``auto`` -> bar on a terminal."""
    mode = mode or progress_mode()
    return mode == "always" or (mode == "auto" and is_terminal(stream))


def duration(seconds: float) -> str:
    """``4.2 s``, ``7 min 05 s``, ``2 h 03 min``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def status_line(
    desc: str,
    count: int,
    total: int | None,
    unit: str,
    elapsed: float,
    done: int,
    postfix: dict[str, Any] | None = None,
    *,
    final: bool = False,
) -> str:
    """One log line. ``done``: units finished in this process (a resumed step starts at ``count - done``),
    the base of the rate and the ETA."""
    rate = done / elapsed if elapsed > 0 else None
    rate_text = f"- {unit}/s" if rate is None else f"{rate:.0f} {unit}/s" if rate >= 100 else f"{rate:.3g} {unit}/s"
    extra = "".join(f", {key} {value}" for key, value in (postfix or {}).items())
    if final:
        of = f"/{total}" if total is not None and count != total else ""
        return f"{desc}: {count}{of} {unit} in {duration(elapsed)} ({rate_text}){extra}"
    if total is None:
        return f"{desc}: {count} {unit}, {rate_text}{extra}"
    percent = 100.0 * count / total if total else 100.0
    eta = f", ETA {duration((total - count) / rate)}" if rate and count < total else ""
    return f"{desc}: {count}/{total} {unit} ({percent:.0f}%), {rate_text}{eta}{extra}"


class Progress:
    """Counts units of one step and shows them (a bar, log lines, or nothing: ``display``).

    Use it as a context manager (or call :meth:`close`): the end line and the bar's last state are
    written then. ``update(n)`` adds finished units; ``set_postfix(**values)`` shows extra values.
    """

    def __init__(
        self,
        total: int | None,
        desc: str | None,
        unit: str,
        *,
        display: str,
        stream: TextIO,
        initial: int = 0,
        interval: float = DEFAULT_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.total, self.desc, self.unit, self.display = total, desc, unit, display
        self.count = self.initial = int(initial)
        self.postfix: dict[str, Any] = {}
        self.interval, self._clock = interval, clock
        self.started = self._last_line = clock()
        self.closed = False
        self._bar = None
        self._parent = _active.get()
        if display != "silent":  # only a shown progress owns the display for what runs inside it
            _active.set(self)
        if display == "bar":
            from tqdm import tqdm

            size = {"ncols": FALLBACK_COLUMNS, "nrows": FALLBACK_ROWS} if _terminal_columns(stream) == 0 else {}
            self._bar = tqdm(
                total=total,
                desc=desc,
                unit=unit,
                initial=self.initial,
                file=stream,
                disable=False,  # the rule above decided; a TQDM_DISABLE default is for other bars
                dynamic_ncols=not size,
                mininterval=0.5,
                **size,
            )
            _bar_opened()
        elif display == "log":
            log.info(
                "%s: %s%s %s", desc, f"{self.initial}/" if self.initial else "", "?" if total is None else total, unit
            )

    @property
    def elapsed(self) -> float:
        return self._clock() - self.started

    def update(self, n: int = 1) -> None:
        self.count += int(n)
        if self._bar is not None:
            self._bar.update(int(n))
        elif (
            self.display == "log" and self._clock() - self._last_line >= self.interval and self.count != self.total
        ):  # the end line follows at once
            self._last_line = self._clock()
            log.info("%s", self._line(final=False))

    def set_postfix(self, **values: Any) -> None:
        self.postfix.update(values)
        if self._bar is not None:
            self._bar.set_postfix(self.postfix, refresh=False)

    def close(self, failed: bool = False) -> None:
        if self.closed:
            return
        self.closed = True
        if _active.get() is self:
            _active.set(self._parent)
        if self._bar is not None:
            self._bar.close()
            _bar_closed()
        elif self.display == "log":
            line = self._line(final=True)
            log.info("%s", line.replace(": ", ": stopped at ", 1) if failed else line)

    def _line(self, final: bool) -> str:
        postfix = {k: f"{v:.4g}" if isinstance(v, float) else v for k, v in self.postfix.items()}
        return status_line(
            str(self.desc),
            self.count,
            self.total,
            self.unit,
            self.elapsed,
            self.count - self.initial,
            postfix,
            final=final,
        )

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(failed=exc_type is not None)


def progress(
    total: int | None, desc: str | None, unit: str = "items", *, initial: int = 0, file: TextIO | None = None
) -> Progress:
    """A :class:`Progress` of ``total`` units (None = unknown) named ``desc`` (None = silent),
    shown on ``file`` (default: ``sys.stderr`` now) by the rule of the module docstring."""
    stream = file if file is not None else sys.stderr
    if desc is None or _active.get() is not None:
        display = "silent"
    elif shows_bar(stream):
        display = "bar"
    else:
        display = "log"
    return Progress(
        total,
        desc,
        unit,
        display=display,
        stream=stream,
        initial=initial,
        interval=log_interval() if display == "log" else DEFAULT_INTERVAL,
    )


def track(
    items: Iterable[T], desc: str | None, unit: str = "items", total: int | None = None, *, file: TextIO | None = None
) -> Iterator[T]:
    """Iterate ``items`` with one progress unit per item (``total`` defaults to ``len(items)``)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with progress(total, desc, unit, file=file) as bar:
        for item in items:
            yield item
            bar.update(1)
