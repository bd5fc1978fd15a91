"""Explanation generation speed: throughput and latency per explanation, as the product writes them.

Each explanation is written as the experiment writes it (:func:`reasoningrec.scoring.explain`,
consistent mode): P(Yes) in one forward pass, then the reasoning generated after the forced answer
``Prediction: <scored label>``, greedy, at most ``--max-new-tokens`` tokens, by the engine that
``evaluate.explain_decode: auto`` picks (``generate`` on CPU, the static CUDA-graph engine on GPUs).
Prompts: the records of ``--records``, else the paper authors' SFT test records of ``--dataset``
(through ``$REASONINGREC_DATA_DIR``), else synthetic ones (the same loader as
``benchmarks/scoring_speed.py``).

Reported per batch size: explanations per second, generated tokens per second, and the latency of
one explanation (batch 1: p50/p95 over the prompts; batch B: the batch's time / B, p50/p95 over
batches).

    python -m benchmarks.explain_speed --model embedded --n 8 --batch-sizes 1 4 --max-new-tokens 96
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from datetime import date


def measure(model, tokenizer, prompts: list[str], batch_size: int, max_new_tokens: int, engine: str) -> dict:
    """Time explaining ``prompts`` in batches of ``batch_size`` (P(Yes) scoring included)."""
    from reasoningrec.chat import render_chat
    from reasoningrec.scoring import explain, score_prompts

    rendered = [render_chat(tokenizer, p) for p in prompts]
    per_explanation, tokens, started = [], 0, time.perf_counter()
    for start in range(0, len(rendered), batch_size):
        batch = rendered[start : start + batch_size]
        t0 = time.perf_counter()
        p_yes = score_prompts(model, tokenizer, batch, batch_size)
        written = explain(
            model, tokenizer, batch, p_yes, max_new_tokens=max_new_tokens, batch_size=batch_size, engine=engine
        )
        seconds = time.perf_counter() - t0
        per_explanation += [seconds / len(batch)] * len(batch)
        tokens += sum(len(tokenizer(e.reasoning, add_special_tokens=False)["input_ids"]) for e in written)
    total = time.perf_counter() - started
    ordered = sorted(per_explanation)
    return {
        "batch_size": batch_size,
        "explanations": len(prompts),
        "seconds": round(total, 2),
        "explanations_per_s": round(len(prompts) / total, 3),
        "tokens_per_s": round(tokens / total, 1),
        "latency_p50_s": round(statistics.median(ordered), 2),
        "latency_p95_s": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 2),
        "mean_new_tokens": round(tokens / len(prompts), 1),
    }


def main(argv: list[str] | None = None) -> int:
    from benchmarks.scoring_speed import load_records

    parser = argparse.ArgumentParser(prog="python -m benchmarks.explain_speed", description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="embedded", help="embedded, a hub id or a folder (the base model)")
    parser.add_argument("--adapter", help="a trained adapter folder instead of the base model")
    parser.add_argument("--records", help="records.parquet (test split of --variant)")
    parser.add_argument("--variant", default="full")
    parser.add_argument("--dataset", default="fashion", help="paper SFT test records when --records is not given")
    parser.add_argument("--data-dir", help="raw data root (default $REASONINGREC_DATA_DIR)")
    parser.add_argument("--n", type=int, default=8, help="prompts (label-balanced)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--engine", default="auto", choices=["auto", "generate", "static"])
    parser.add_argument("--warmup", type=int, default=1, help="untimed batches of each size written before timing")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)

    import torch

    from reasoningrec import models

    texts, _, source = load_records(args)
    if args.adapter:
        model, tokenizer, _ = models.load_adapter(args.adapter)
    else:
        model, tokenizer = models.load_causal_lm(args.model), models.load_tokenizer(args.model)
    device = str(models.model_device(model))
    hardware = torch.cuda.get_device_name() if device.startswith("cuda") else f"{platform.processor() or 'CPU'}"
    print(
        f"explain speed: {len(texts)} prompts from {source}; {device} ({hardware}); "
        f"{torch.get_num_threads()} threads; {date.today()}",
        file=sys.stderr,
    )
    rows = []
    for batch_size in args.batch_sizes:
        if args.warmup:
            # One untimed batch of each size first: the static engine captures a CUDA graph per shape.
            warmup = texts[: args.warmup * batch_size]
            measure(model, tokenizer, warmup, batch_size, args.max_new_tokens, args.engine)
        rows.append(measure(model, tokenizer, texts, batch_size, args.max_new_tokens, args.engine))
    header = ["batch", "explanations/s", "new tokens/s", "latency p50 (s)", "latency p95 (s)", "mean new tokens"]
    print("| " + " | ".join(header) + " |\n|" + "---:|" * len(header))
    for r in rows:
        print(
            f"| {r['batch_size']} | {r['explanations_per_s']} | {r['tokens_per_s']} | {r['latency_p50_s']} "
            f"| {r['latency_p95_s']} | {r['mean_new_tokens']} |"
        )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"source": source, "device": device, "hardware": hardware, "rows": rows}, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
