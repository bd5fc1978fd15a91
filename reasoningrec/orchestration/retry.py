"""Which failures are worth retrying.

LLM calls fail transiently (a busy server, a dropped connection) and are retried with exponential
backoff. Running out of GPU memory is not transient: the same batch on the same card fails again, so
retrying only burns GPU time. Bad data and bad settings are not transient either.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

from reasoningrec.errors import ConfigError, DataError, MissingDependency, ValidationFailed

NOT_TRANSIENT = (ConfigError, DataError, ValidationFailed, MissingDependency)
_OOM_MESSAGES = ("cuda out of memory", "out of memory", "cublas_status_alloc_failed", "hip out of memory")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def is_out_of_memory(exc: BaseException) -> bool:
    """True for ``torch.OutOfMemoryError`` or a (CUDA) out-of-memory error anywhere in the cause chain."""
    torch = sys.modules.get("torch")  # only a loaded torch can have raised its own error type
    oom_type = getattr(torch, "OutOfMemoryError", None) if torch is not None else None
    for err in _chain(exc):
        if oom_type is not None and isinstance(err, oom_type):
            return True
        if isinstance(err, MemoryError):
            return True
        if any(text in str(err).lower() for text in _OOM_MESSAGES):
            return True
    return False


def is_retryable(exc: BaseException) -> bool:
    """Transient failures only: not out-of-memory, not bad data, settings or a missing package."""
    return not is_out_of_memory(exc) and not any(isinstance(e, NOT_TRANSIENT) for e in _chain(exc))


def state_exception(state: Any) -> BaseException | None:
    """The exception a failed Prefect state holds (``None`` when it holds none)."""
    data = getattr(state, "data", None)
    if isinstance(data, BaseException):
        return data
    try:
        result = state.result(raise_on_failure=False)
    except Exception as exc:  # the state re-raised its own error
        return exc
    return result if isinstance(result, BaseException) else None


def retry_condition(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry unless the failure is out-of-memory or not transient."""
    exc = state_exception(state)
    return True if exc is None else is_retryable(exc)
