"""The multi-GPU scaling benchmark: it refuses without two GPUs, and its --smoke mode runs the same
code (torchrun DDP training, MultiDeviceBackend synthesis) on two CPU processes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # benchmarks.* import each other
from benchmarks import multi_gpu  # noqa: E402


def test_scaling_efficiency_is_the_speed_up_per_device():
    assert multi_gpu.efficiency(1000.0, 1800.0, 2) == pytest.approx(0.9)
    assert multi_gpu.efficiency(1000.0, 1000.0, 4) == pytest.approx(0.25)


def test_without_two_gpus_it_refuses_and_says_what_to_run(capsys):
    import torch

    if torch.cuda.is_available() and torch.cuda.device_count() >= 2:
        pytest.skip("this host has two GPUs")
    assert multi_gpu.main([]) == 2
    assert "needs at least 2 visible GPUs" in capsys.readouterr().err and "--smoke" in multi_gpu.__doc__


@pytest.mark.slow  # two torchrun launches and two worker sets: about 80 s on the 2-core CI box
def test_smoke_run_trains_and_generates_on_one_and_two_cpu_processes(tmp_path, capsys):
    out = tmp_path / "perf.md"
    assert multi_gpu.main(["--smoke", "--steps", "1", "--warmup", "1", "--prompts", "4", "--out", str(out)]) == 0
    rows = [line.split("|")[1:-1] for line in out.read_text().splitlines() if line.startswith(("| LoRA", "| synth"))]
    assert [(r[0].strip(), r[1].strip()) for r in rows] == [
        ("LoRA training", "1"),
        ("LoRA training", "2"),
        ("synthesis", "1"),
        ("synthesis", "2"),
    ]
    assert [r[2].strip() for r in rows[:2]] == ["1 x 8", "1 x 4"]  # the same global batch on 1 and 2
    assert all(float(r[3].replace(",", "")) > 0 for r in rows)
    assert '"tokens": 16' in capsys.readouterr().out  # 4 prompts x 4 tokens, on 1 and on 2 workers
