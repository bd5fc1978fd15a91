"""LoRA training throughput on CUDA for a correctly shaped 7B model: our default precision vs 8-bit.

A Llama-2-7B configuration with random weights (the shapes, not the weights, set the speed), random
token batches of ``--seq-len`` tokens, LoRA r=8 on q_proj/v_proj as in params.yaml, activation
checkpointing on. Precisions: ``bf16`` (our default on CUDA: bf16 weights, bf16 LoRA) and ``int8``
(the paper's recipe: LLM.int8 weights through bitsandbytes, prepared for k-bit training), optionally
``nf4`` (QLoRA). MFU = 4 x parameters x tokens/s / peak bf16 FLOP/s (forward + activation gradients;
frozen weights get no weight gradient, hence 4 rather than 6).

    python -m benchmarks.train_throughput --precisions bf16 int8 --out docs/performance.md
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from pathlib import Path

LLAMA2_7B = dict(
    vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
    num_key_value_heads=32, max_position_embeddings=4096, rms_norm_eps=1e-5, tie_word_embeddings=False,
)


def build_model(precision: str, layers: int | None, checkpoint_dir: Path):
    import torch
    from transformers import BitsAndBytesConfig, LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(**{**LLAMA2_7B, **({"num_hidden_layers": layers} if layers else {})})
    if precision == "bf16":
        torch.set_default_dtype(torch.bfloat16)
        try:
            with torch.device("cuda"):
                model = LlamaForCausalLM(config)
        finally:
            torch.set_default_dtype(torch.float32)
        return model, config
    # Quantized loading goes through from_pretrained: write the random bf16 weights once, reload quantized.
    if not (checkpoint_dir / "config.json").is_file():
        torch.set_default_dtype(torch.bfloat16)
        try:
            with torch.device("cuda"):
                model = LlamaForCausalLM(config)
        finally:
            torch.set_default_dtype(torch.float32)
        model.save_pretrained(checkpoint_dir)
        del model
        gc.collect()
        torch.cuda.empty_cache()
    quant = (
        BitsAndBytesConfig(load_in_8bit=True)
        if precision == "int8"
        else BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16,
                                bnb_4bit_use_double_quant=True)
    )
    model = LlamaForCausalLM.from_pretrained(checkpoint_dir, quantization_config=quant, dtype=torch.bfloat16,
                                             device_map={"": 0})
    return model, config


def measure(precision: str, args, checkpoint_dir: Path) -> dict:
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    model, config = build_model(precision, args.layers, checkpoint_dir)
    n_params = sum(p.numel() for p in model.parameters())
    if precision in {"int8", "nf4"}:
        # bitsandbytes stores int8/4-bit weights in fewer elements; count the model's logical size instead.
        n_params = _logical_params(config)
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05,
                                             target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    model.train()
    optim = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-4)
    gen = torch.Generator(device="cuda").manual_seed(0)

    def step(model=model, optim=optim):
        ids = torch.randint(0, config.vocab_size, (args.batch_size, args.seq_len), device="cuda", generator=gen)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optim.step()
        optim.zero_grad(set_to_none=True)

    torch.cuda.reset_peak_memory_stats()
    for _ in range(args.warmup):
        step()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    tokens_per_s = args.steps * args.batch_size * args.seq_len / seconds
    result = {
        "precision": precision, "params": n_params, "tokens_per_s": tokens_per_s,
        "mfu": 4 * n_params * tokens_per_s / (args.peak_tflops * 1e12),
        "peak_gib": torch.cuda.max_memory_allocated() / 2**30, "step_s": seconds / args.steps,
    }
    model = optim = step = None
    gc.collect()
    torch.cuda.empty_cache()
    return result


def _logical_params(config) -> int:
    h, i, v, n = config.hidden_size, config.intermediate_size, config.vocab_size, config.num_hidden_layers
    per_layer = 4 * h * h + 3 * h * i + 2 * h
    return n * per_layer + 2 * v * h + h


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--precisions", nargs="+", default=["bf16", "int8"], choices=["bf16", "int8", "nf4"])
    parser.add_argument("--seq-len", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--layers", type=int, help="fewer layers for a quick try (default: all 32)")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="bf16 dense peak (H100 SXM: 989)")
    parser.add_argument("--tmp-dir", help="where the random weights are written for quantized loading")
    parser.add_argument("--out", help="append the markdown table to this file")
    args = parser.parse_args(argv)

    import torch

    if not torch.cuda.is_available():
        print("train_throughput needs a CUDA GPU", file=sys.stderr)
        return 2
    rows = []
    with tempfile.TemporaryDirectory(dir=args.tmp_dir) as tmp:
        for precision in args.precisions:
            rows.append(measure(precision, args, Path(tmp)))
            print(rows[-1], flush=True)
    layers = args.layers or LLAMA2_7B["num_hidden_layers"]
    lines = [
        f"### LoRA training throughput, Llama-2-7B shape ({time.strftime('%Y-%m-%d')})",
        "",
        f"{torch.cuda.get_device_name()}; {layers} layers, random weights; seq len {args.seq_len}, batch "
        f"{args.batch_size}; LoRA r=8 on q_proj/v_proj; activation checkpointing; {args.steps} timed steps after "
        f"{args.warmup} warm-up; MFU = 4 x params x tokens/s / {args.peak_tflops:g} TFLOP/s.",
        "",
        "| precision | params (B) | tokens/s | s/step | MFU | peak memory (GiB) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['precision']} | {r['params'] / 1e9:.2f} | {r['tokens_per_s']:,.0f} | {r['step_s']:.2f} | "
                     f"{r['mfu']:.1%} | {r['peak_gib']:.1f} |")
    if len(rows) > 1:
        base = next((r for r in rows if r["precision"] == "int8"), rows[-1])
        for r in rows:
            if r is not base:
                lines.append(f"\n{r['precision']} is {r['tokens_per_s'] / base['tokens_per_s']:.2f}x the tokens/s of {base['precision']}.")
    table = "\n".join(lines) + "\n"
    print(table)
    if args.out:
        with open(args.out, "a", encoding="utf-8") as handle:
            handle.write("\n" + table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
