"""Shared fixtures. Tests run offline; real-data tests skip when ../shared/data is absent."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Telemetry off and no hub access before any third-party import in a test module.
for _key, _value in {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "GX_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DVC_NO_ANALYTICS": "1",
    "TOKENIZERS_PARALLELISM": "false",
}.items():
    os.environ.setdefault(_key, _value)

REPO_ROOT = Path(__file__).resolve().parents[1]
# Prefect: a temporary home before prefect is ever imported, so no test touches the user's Prefect
# profile, database or result storage (the prefect_api fixture starts a temporary server in it).
_PREFECT_HOME = tempfile.mkdtemp(prefix="reasoningrec-prefect-")
for _key, _value in {
    "PREFECT_HOME": _PREFECT_HOME,
    "PREFECT_LOCAL_STORAGE_PATH": f"{_PREFECT_HOME}/storage",
    "PREFECT_LOGGING_LEVEL": "WARNING",
}.items():
    os.environ.setdefault(_key, _value)
# Stage metrics of test runs go to a temporary folder, never into the checkout's metrics/.
os.environ.setdefault("REASONINGREC_METRICS_DIR", tempfile.mkdtemp(prefix="reasoningrec-test-metrics-"))
SHARED_DATA = Path(os.environ.get("REASONINGREC_TEST_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of the real public datasets; skips the test when they are not on this machine."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (set REASONINGREC_TEST_DATA)")
    return SHARED_DATA


def data_file(relative: str) -> Path:
    """A file under the shared data root, or skip the test when it is absent."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"{path} not found")
    return path


@pytest.fixture(scope="session")
def params():
    """The repository's settings at the paper's sizes: params.yaml + configs/paper.yaml, validated."""
    from reasoningrec.config import read_params

    return read_params(REPO_ROOT / "params.yaml", overlays=[REPO_ROOT / "configs" / "paper.yaml"])


@pytest.fixture(scope="session")
def slice_params():
    """params.yaml as it is: the README main job's small slice."""
    from reasoningrec.config import read_params

    return read_params(REPO_ROOT / "params.yaml")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random Llama chat model + tokenizer on disk (built once per test session)."""
    from reasoningrec.testing import build_tiny_chat_model

    return build_tiny_chat_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def tiny_tokenizer():
    """The tiny model's tokenizer (ChatML template; " Yes" and " No" single tokens), built once per session.
    Shared: a test that changes it (padding side, special tokens) builds its own instead."""
    from reasoningrec.testing import build_tiny_tokenizer

    return build_tiny_tokenizer()


@pytest.fixture(scope="session")
def prefect_api():
    """One temporary Prefect server + SQLite database for the whole session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield


@pytest.fixture(scope="session")
def talkative_model_dir(tmp_path_factory) -> Path:
    """The tiny model with larger random weights: its greedy replies differ from prompt to prompt."""
    from reasoningrec.testing import build_tiny_chat_model

    return build_tiny_chat_model(tmp_path_factory.mktemp("talkative-model"), initializer_range=0.3)
