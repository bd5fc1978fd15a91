"""The README's entry points: the environment the Makefile exports reaches the commands intact."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TELEMETRY_OFF = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "GX_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DVC_NO_ANALYTICS": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
}


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_each_exported_variable_holds_exactly_its_value(tmp_path):
    probe = tmp_path / "probe.mk"
    probe.write_text(f"include {ROOT / 'Makefile'}\nprobe:\n\t@env\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in TELEMETRY_OFF}
    printed = subprocess.run(
        ["make", "-s", "-f", str(probe), "probe"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    exported = dict(line.split("=", 1) for line in printed.splitlines() if "=" in line)
    assert {name: exported.get(name) for name in TELEMETRY_OFF} == TELEMETRY_OFF
