"""Floating-point work of one-pass scoring versus the paper's generate-256 recipe, per record.

On a compute-bound CPU the speed-up of ``benchmarks/scoring_speed.py`` can hardly exceed this ratio.
Counts 2 FLOPs per multiply-add for every weight outside the embedding (the LM head is read at the
answer position only in ours, at every generated token in theirs) and 4 x length x hidden per token
per layer for attention (half of it for a causal prefill; the padded prefill is counted in full,
since the kernel still computes the masked positions).

    python -m benchmarks.scoring_flops --prompt-tokens 624
"""

from __future__ import annotations

import argparse
import sys


def layer_weights(config) -> int:
    """Weights of one decoder layer (attention projections + gated MLP)."""
    hidden = config.hidden_size
    head_dim = getattr(config, "head_dim", None) or hidden // config.num_attention_heads
    kv = config.num_key_value_heads * head_dim
    attention = 2 * hidden * config.num_attention_heads * head_dim + 2 * hidden * kv
    return attention + 3 * hidden * config.intermediate_size


def scoring_flops(config, prompt_tokens: int, pad_to: int = 2100, new_tokens: int = 256) -> dict[str, float]:
    """GFLOPs per record: ``ours`` (one causal pass), ``paper`` (padded prefill + decode) and their ratio."""
    layers, hidden, vocab = config.num_hidden_layers, config.hidden_size, config.vocab_size
    per_token = 2 * layers * layer_weights(config)
    head = 2 * hidden * vocab
    ours = prompt_tokens * per_token + 2 * layers * prompt_tokens**2 * hidden + head
    width = max(pad_to, prompt_tokens)
    prefill = width * per_token + 4 * layers * width**2 * hidden + head
    decode = sum(per_token + head + 4 * layers * (width + step) * hidden for step in range(1, new_tokens))
    result = {"ours": ours / 1e9, "paper": (prefill + decode) / 1e9}
    result["ratio"] = result["paper"] / result["ours"]
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="embedded", help="base model: embedded, hub id or folder")
    parser.add_argument("--prompt-tokens", type=int, default=624)
    parser.add_argument("--pad-to", type=int, default=2100)
    parser.add_argument("--new-tokens", type=int, default=256)
    args = parser.parse_args(argv)

    from transformers import AutoConfig

    from reasoningrec.models import resolve_model

    config = AutoConfig.from_pretrained(resolve_model(args.model))
    flops = scoring_flops(config, args.prompt_tokens, args.pad_to, args.new_tokens)
    weights_m = layer_weights(config) * config.num_hidden_layers / 1e6
    print(
        f"{args.model}: {config.num_hidden_layers} layers, {weights_m:.1f} M "
        f"layer weights; prompt {args.prompt_tokens} tokens; paper: pad to {args.pad_to}, {args.new_tokens} new tokens"
    )
    print(f"ours {flops['ours']:.0f} GFLOP, paper {flops['paper']:.0f} GFLOP, ratio {flops['ratio']:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
