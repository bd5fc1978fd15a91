"""The FLOP count behind the CPU scoring speed-up ceiling (benchmarks/scoring_flops.py)."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import scoring_flops as sf  # noqa: E402

SMOLLM2_135M = SimpleNamespace(
    hidden_size=576,
    num_attention_heads=9,
    num_key_value_heads=3,
    intermediate_size=1536,
    num_hidden_layers=30,
    vocab_size=49152,
)


def test_layer_weights_of_smollm2_135m():
    # q, o: 576 x 576; k, v: 576 x 192; gate, up, down: 576 x 1536.
    assert sf.layer_weights(SMOLLM2_135M) == 2 * 576 * 576 + 2 * 576 * 192 + 3 * 576 * 1536


def test_one_pass_is_cheaper_the_more_the_paper_pads():
    short, long = (sf.scoring_flops(SMOLLM2_135M, n) for n in (400, 1500))
    assert short["ratio"] > long["ratio"] > 1
    # Without padding or generation the two recipes differ by the non-causal attention only.
    same = sf.scoring_flops(SMOLLM2_135M, 624, pad_to=624, new_tokens=1)
    assert 1 < same["ratio"] < 1.2
