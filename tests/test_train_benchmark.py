"""The LoRA training-throughput benchmark on CPU (smoke shapes): its own loop and the product's
SFTTrainer path (reasoningrec.training.arguments.sft_arguments + the answer-weighted loss) both run and report."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # the trainer path imports benchmarks.llm_throughput
_SPEC = importlib.util.spec_from_file_location("train_throughput", REPO_ROOT / "benchmarks" / "train_throughput.py")
bench = importlib.util.module_from_spec(_SPEC)
sys.modules[_SPEC.name] = bench  # dataclasses look their module up here
_SPEC.loader.exec_module(bench)


def test_configuration_strings_parse_and_are_checked():
    run = bench.RunConfig.parse("bf16:nockpt:mb2:compile:trainer")
    assert run == bench.RunConfig("bf16", checkpointing=False, micro_batch=2, compile=True, trainer=True)
    assert run.label == "bf16, no checkpointing, micro-batch 2, torch.compile, SFTTrainer"
    with pytest.raises(ValueError, match="unknown flag 'fast'"):
        bench.RunConfig.parse("bf16:fast")


def test_trainer_texts_fill_the_sequence_and_keep_a_completion(tiny_tokenizer):
    tok = tiny_tokenizer
    pairs = bench.trainer_texts(tok, 4, 96)
    for prompt, completion in pairs:
        assert len(tok(prompt)["input_ids"]) < 96 < len(tok(prompt + completion)["input_ids"])
        assert completion.startswith(("Prediction: Yes\n", "Prediction: No\n"))


def test_smoke_run_through_own_loop_and_sft_trainer(tmp_path):
    out = tmp_path / "train.md"
    argv = ["--smoke", "--configs", "bf16:nockpt", "bf16:nockpt:mb2:trainer", "--steps", "2", "--warmup", "1"]
    assert bench.main([*argv, "--out", str(out)]) == 0
    rows = [line for line in out.read_text().splitlines() if line.startswith("| bf16")]
    assert len(rows) == 2
    assert "| own loop |" in rows[0] and "| SFTTrainer |" in rows[1]
    tokens_per_s = float(rows[1].split("|")[7].replace(",", ""))
    assert tokens_per_s > 0
