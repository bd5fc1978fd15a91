"""The throughput benchmark runs end to end on CPU with the tiny model and writes its markdown row."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

# benchmarks/ is a folder of scripts, not an installed package: load the file itself.
_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "llm_throughput.py"
_SPEC = importlib.util.spec_from_file_location("llm_throughput", _PATH)
bench = importlib.util.module_from_spec(_SPEC)
sys.modules[_SPEC.name] = bench  # dataclasses look their module up here
_SPEC.loader.exec_module(bench)


def test_benchmark_runs_on_cpu_and_appends_its_row(tmp_path):
    from reasoningrec.testing import build_tiny_chat_model

    model = build_tiny_chat_model(tmp_path / "tiny")
    out = tmp_path / "bench.md"
    argv = ["--model", str(model), "--device", "cpu", "--batch-size", "3", "--new-tokens", "4"]
    result = bench.main(
        [*argv, "--naive-prompts", "1", "--warmup", "0", "--hbm-gbps", "100", "--out", str(out)]
    )
    assert result.batched_tps > 0 and result.naive_tps > 0 and 0 < result.roofline < 1
    lines = out.read_text().splitlines()
    assert lines[:2] == bench.HEADER.splitlines()
    assert len(lines) == 3 and lines[2].startswith(f"| {model} | cpu | float32 | 3 | 4 |")
    assert lines[2] == result.row() and lines[2].endswith("% |")


def test_rows_append_under_one_header(tmp_path):
    out = tmp_path / "docs" / "bench.md"
    row = bench.Result("m", "cpu", "float32", 8, 16, 80.0, 10.0, None).row()
    assert row == "| m | cpu | float32 | 8 | 16 | 80.0 | 10.0 | 8.0x | n/a |"
    bench.append_row(out, row)
    bench.append_row(out, row.replace("n/a", "41%"))
    assert out.read_text().splitlines() == [*bench.HEADER.splitlines(), row, row.replace("n/a", "41%")]


def test_random_llama2_is_shaped_like_the_real_7b():
    import torch
    from transformers import LlamaForCausalLM

    with torch.device("meta"):
        model = LlamaForCausalLM(bench.llama2_7b_config())
    params = sum(p.numel() for p in model.parameters())
    assert params == 6_738_415_616  # Llama-2-7B's published parameter count
    # bf16: every weight but the input embedding is read once per decode step.
    assert bench.weight_bytes_per_step(model.to(torch.bfloat16)) == 2 * (params - 32000 * 4096)


def test_arguments_are_validated():
    with pytest.raises(SystemExit):
        bench.parse_args(["--batch-size", "0"])
    assert bench.parse_args(["--batch-size", "2", "--naive-prompts", "9"]).naive_prompts == 2
