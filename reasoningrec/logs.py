"""Logging and third-party telemetry defaults: quiet, structured on request, no phoning home.

``REASONINGREC_LOG_LEVEL`` (default INFO) sets this package's level; third-party loggers stay at
WARNING. ``REASONINGREC_LOG_FORMAT=json`` emits one JSON object per line for log collectors.
"""

from __future__ import annotations

import json
import logging
import os
import sys

# Telemetry of the tools this package drives; each stays overridable by the user's environment.
TELEMETRY_OFF = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "GX_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DVC_NO_ANALYTICS": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TOKENIZERS_PARALLELISM": "false",
}
NOISY = (
    "transformers",
    "datasets",
    "mlflow",
    "great_expectations",
    "prefect",
    "httpx",
    "urllib3",
    "alembic",
    "peft",
    "trl",
    "accelerate",
    "filelock",
    "bert_score",
)


def disable_telemetry() -> None:
    """Set the telemetry opt-outs unless the user chose otherwise."""
    for key, value in TELEMETRY_OFF.items():
        os.environ.setdefault(key, value)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


class CurrentStderrHandler(logging.StreamHandler):
    """A stream handler that writes to ``sys.stderr`` as it is when a record is emitted, so a
    replaced stderr (a test runner's capture, a redirect) never leaves it writing to a closed file."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:  # StreamHandler.__init__ assigns it
        pass


def setup_logging(level: str | None = None) -> None:
    """Configure the root handler once: our logs at ``level``, third-party ones at WARNING."""
    disable_telemetry()
    level = (level or os.environ.get("REASONINGREC_LOG_LEVEL", "INFO")).upper()
    handler = CurrentStderrHandler()
    if os.environ.get("REASONINGREC_LOG_FORMAT", "").lower() == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    import warnings

    # Library deprecation chatter is for their developers, not for pipeline users.
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    # One progress convention (reasoningrec.progress): MLflow's per-download bars are not long steps.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from reasoningrec.progress import shows_bar

    if not shows_bar(sys.stderr):
        # Third-party bars (model loading, GGUF conversion) follow the same rule as ours: none
        # where ours would print log lines. Only defaults: an explicit setting of the user wins.
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TQDM_DISABLE", "1")
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("reasoningrec").setLevel(level)
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.WARNING)
    # bitsandbytes warns on every CPU import about optional kernels it cannot use there.
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    # MLflow's notes on pickled pyfunc models and missing input examples concern its own model format.
    logging.getLogger("mlflow.pyfunc").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=UserWarning, module=r"mlflow(\.|$)")
