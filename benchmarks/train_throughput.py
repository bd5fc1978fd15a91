"""LoRA training throughput on CUDA for a correctly shaped 7B model: our default precision vs 8-bit.

A Llama-2-7B configuration with random weights (the shapes, not the weights, set the speed), random
token batches of ``--seq-len`` tokens, LoRA r=8 on q_proj/v_proj as in params.yaml, SDPA attention
(flash kernel on CUDA). Precisions: ``bf16`` (our default on CUDA: bf16 weights, bf16 LoRA) and
``int8`` (the paper's recipe: LLM.int8 weights through bitsandbytes, prepared for k-bit training),
optionally ``nf4`` (QLoRA). MFU = 4 x parameters x tokens/s / peak bf16 FLOP/s (forward + activation
gradients; frozen weights get no weight gradient, hence 4 rather than 6; the recomputed forward of
activation checkpointing is not counted, as usual for MFU).

Each configuration is ``precision[:nockpt][:mbN][:compile][:trainer]``: no activation checkpointing,
micro-batch N (sequences per step), ``torch.compile`` of the model, and ``trainer``: the step runs
through the product's own training path instead of this file's loop (TRL ``SFTTrainer`` with
:func:`reasoningrec.training.arguments.sft_arguments`, the answer-weighted completion loss, ``train.compile`` as
``torch_compile``) on prompt/completion texts of ``--seq-len`` tokens (``--tokenizer``: a SentencePiece
file, default the offline Llama tokenizers or the tiny test one). One table row per configuration, so
the table shows what each change buys; a configuration that runs out of memory gets an ``OOM`` row.

    python -m benchmarks.train_throughput --out docs/performance.md   # the default configurations
    python -m benchmarks.train_throughput --precisions bf16 --no-checkpointing --batch-size 2
    python -m benchmarks.train_throughput --smoke                       # tiny model on CPU: the path only
"""

from __future__ import annotations

import argparse
import gc
import math
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

# bitsandbytes warns once per int8 matmul call that bf16 inputs are cast: thousands of lines a run.
warnings.filterwarnings("ignore", message=r".*MatMul8bitLt: inputs will be cast.*")

LLAMA2_7B = dict(
    vocab_size=32000,
    hidden_size=4096,
    intermediate_size=11008,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=32,
    max_position_embeddings=4096,
    rms_norm_eps=1e-5,
    tie_word_embeddings=False,
)
SMOKE = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4)
DEFAULT_CONFIGS = ["bf16", "bf16:nockpt", "bf16:nockpt:mb2", "int8", "bf16:nockpt:compile"]


@dataclass(frozen=True)
class RunConfig:
    """One measured configuration."""

    precision: str
    checkpointing: bool = True
    micro_batch: int = 1
    compile: bool = False
    trainer: bool = False

    @classmethod
    def parse(cls, text: str) -> RunConfig:
        """``bf16``, ``bf16:nockpt``, ``bf16:nockpt:mb2:compile``, ``int8:mb2``..."""
        precision, *flags = text.split(":")
        if precision not in ("bf16", "int8", "nf4"):
            raise ValueError(f"config {text!r}: precision {precision!r}, expected bf16, int8 or nf4")
        kwargs: dict = {}
        for flag in flags:
            if flag == "nockpt":
                kwargs["checkpointing"] = False
            elif flag == "compile":
                kwargs["compile"] = True
            elif flag == "trainer":
                kwargs["trainer"] = True
            elif flag.startswith("mb") and flag[2:].isdigit() and int(flag[2:]) >= 1:
                kwargs["micro_batch"] = int(flag[2:])
            else:
                raise ValueError(f"config {text!r}: unknown flag {flag!r} (nockpt, mbN, compile, trainer)")
        return cls(precision, **kwargs)

    @property
    def label(self) -> str:
        parts = [
            self.precision,
            "checkpointing" if self.checkpointing else "no checkpointing",
            f"micro-batch {self.micro_batch}",
        ]
        extra = (["torch.compile"] if self.compile else []) + (["SFTTrainer"] if self.trainer else [])
        return ", ".join(parts + extra)


def model_config(layers: int | None, smoke: bool):
    from transformers import LlamaConfig

    shape = {**LLAMA2_7B, **(SMOKE if smoke else {})}
    return LlamaConfig(**{**shape, **({"num_hidden_layers": layers} if layers else {})}, attn_implementation="sdpa")


def build_model(precision: str, layers: int | None, checkpoint_dir: Path, device: str = "cuda", smoke: bool = False):
    import torch
    from transformers import BitsAndBytesConfig, LlamaForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # "Loading weights" / "Writing model shards" bars fill the log
    config = model_config(layers, smoke)
    if precision == "bf16":
        torch.set_default_dtype(torch.bfloat16)
        try:
            with torch.device(device):
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
        else BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=torch.bfloat16,
            bnb_4bit_use_double_quant=True,
        )
    )
    model = LlamaForCausalLM.from_pretrained(
        checkpoint_dir, quantization_config=quant, dtype=torch.bfloat16, device_map={"": 0}, attn_implementation="sdpa"
    )
    return model, config


def measure(run: RunConfig, args, checkpoint_dir: Path, device: str = "cuda") -> dict:
    """tokens/s, MFU and peak memory of ``run``; an ``oom`` row when it does not fit."""
    import torch

    try:
        return _measure(run, args, checkpoint_dir, device)
    except torch.cuda.OutOfMemoryError as exc:
        print(f"{run.label}: out of memory ({str(exc).splitlines()[0]})", file=sys.stderr)
        return {"config": run, "oom": True}
    finally:
        gc.collect()
        if device == "cuda":
            torch.cuda.empty_cache()


def _measure(run: RunConfig, args, checkpoint_dir: Path, device: str) -> dict:
    if run.trainer:
        return _measure_trainer(run, args, checkpoint_dir, device)
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    model, config = build_model(run.precision, args.layers, checkpoint_dir, device, args.smoke)
    n_params = sum(p.numel() for p in model.parameters())
    if run.precision in {"int8", "nf4"}:
        # bitsandbytes stores int8/4-bit weights in fewer elements; count the model's logical size instead.
        n_params = _logical_params(config)
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=run.checkpointing)
    elif run.checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    model.config.use_cache = False
    model = get_peft_model(
        model,
        LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"),
    )
    model.train()
    optim = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-4)
    forward = torch.compile(model) if run.compile else model
    gen = torch.Generator(device=device).manual_seed(0)

    def step():
        ids = torch.randint(0, config.vocab_size, (run.micro_batch, args.seq_len), device=device, generator=gen)
        with torch.autocast(device, dtype=torch.bfloat16):
            loss = forward(input_ids=ids, labels=ids).loss
        loss.backward()
        optim.step()
        optim.zero_grad(set_to_none=True)
        return loss

    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(args.warmup):
        loss = step()
    sync()
    warmup_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    sync()
    seconds = time.perf_counter() - t0
    if not torch.isfinite(loss.detach().float()):
        raise RuntimeError(f"{run.label}: loss {loss.item()} is not finite")
    tokens_per_s = args.steps * run.micro_batch * args.seq_len / seconds
    return {
        "config": run,
        "precision": run.precision,
        "params": n_params,
        "tokens_per_s": tokens_per_s,
        "mfu": 4 * n_params * tokens_per_s / (args.peak_tflops * 1e12),
        "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else float("nan"),
        "step_s": seconds / args.steps,
        "warmup_s": warmup_s,
    }


def trainer_texts(tokenizer, n: int, seq_len: int, seed: int = 0) -> list[tuple[str, str]]:
    """``n`` (prompt, completion) pairs of more than ``seq_len`` tokens together: a prompt of random
    words (a third of ``seq_len``) and ``Prediction: Yes|No`` plus reasoning words (cut to ``seq_len``
    by the trainer)."""
    import random

    rng = random.Random(seed)
    words = [
        "the",
        "user",
        "liked",
        "a",
        "gentle",
        "cream",
        "with",
        "lasting",
        "scent",
        "and",
        "soft",
        "leather",
        "boots",
        "but",
        "disliked",
        "cheap",
        "fabric",
        "so",
        "will",
        "enjoy",
        "this",
    ]
    per_word = len(tokenizer(" ".join(words * 4))["input_ids"]) / (4 * len(words))
    prompt_words, reason_words = int(seq_len / 3 / per_word), int(seq_len * 1.2 / per_word)
    pairs = []
    for i in range(n):
        prompt = " ".join(rng.choices(words, k=prompt_words))
        reason = " ".join(rng.choices(words, k=reason_words))
        pairs.append((prompt, f"Prediction: {'Yes' if i % 2 else 'No'}\nReasoning: {reason}"))
    if n and len(tokenizer(pairs[0][0] + pairs[0][1])["input_ids"]) < seq_len:
        raise RuntimeError("trainer texts are shorter than --seq-len for this tokenizer")
    return pairs


def _measure_trainer(run: RunConfig, args, checkpoint_dir: Path, device: str) -> dict:
    """tokens/s of ``run.warmup + steps`` optimizer steps through ``reasoningrec.training``'s
    SFTTrainer (bf16 only; every example fills ``--seq-len`` tokens, so nothing is padded)."""
    import torch
    from datasets import Dataset
    from transformers import TrainerCallback

    from benchmarks.llm_throughput import load_tokenizer
    from reasoningrec.answer import answer_token_ids
    from reasoningrec.config import TrainConfig
    from reasoningrec.training.arguments import lora_config, sft_arguments
    from reasoningrec.training.trainer import sft_trainer_class

    if run.precision != "bf16":
        raise ValueError(f"{run.label}: the trainer path is measured in bf16 only")
    model, config = build_model(run.precision, args.layers, checkpoint_dir, device, args.smoke)
    n_params = sum(p.numel() for p in model.parameters())
    tokenizer = load_tokenizer(args.tokenizer)
    cfg = TrainConfig(
        precision="bf16",
        batch_size=run.micro_batch,
        gradient_checkpointing=run.checkpointing,
        compile=run.compile,
        epochs=1,
    )
    steps = args.warmup + args.steps
    pairs = trainer_texts(tokenizer, steps * run.micro_batch, args.seq_len)
    dataset = Dataset.from_dict({"prompt": [p for p, _ in pairs], "completion": [c for _, c in pairs]})
    cuda = device == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    marks: list[float] = []

    class StepClock(TrainerCallback):
        def on_step_end(self, *_, **__):
            sync()
            marks.append(time.perf_counter())

    sft_args = sft_arguments(
        cfg,
        checkpoint_dir / "trainer",
        cuda=cuda,
        precision="bf16",
        max_length=args.seq_len,
        seed=0,
        max_steps=steps,
        save_strategy="no",
        logging_steps=steps,
        use_cpu=not cuda,
        bf16=cuda,
    )
    trainer = sft_trainer_class()(
        model=model,
        args=sft_args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=lora_config(cfg),
        callbacks=[StepClock()],
        answer_ids=answer_token_ids(tokenizer),
        answer_loss_weight=cfg.answer_loss_weight,
    )
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    output = trainer.train()
    if len(marks) != steps:
        raise RuntimeError(f"{run.label}: {len(marks)} steps timed, expected {steps}")
    if not math.isfinite(output.training_loss):
        raise RuntimeError(f"{run.label}: training loss {output.training_loss} is not finite")
    seconds = marks[-1] - marks[args.warmup - 1] if args.warmup else marks[-1] - t0
    tokens_per_s = args.steps * run.micro_batch * args.seq_len / seconds
    return {
        "config": run,
        "precision": run.precision,
        "params": n_params,
        "tokens_per_s": tokens_per_s,
        "mfu": 4 * n_params * tokens_per_s / (args.peak_tflops * 1e12),
        "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan"),
        "step_s": seconds / args.steps,
        "warmup_s": (marks[args.warmup - 1] - t0) if args.warmup else 0.0,
    }


def _logical_params(config) -> int:
    h, i, v, n = config.hidden_size, config.intermediate_size, config.vocab_size, config.num_hidden_layers
    per_layer = 4 * h * h + 3 * h * i + 2 * h
    return n * per_layer + 2 * v * h + h


def configs_from(args) -> list[RunConfig]:
    """The configurations to measure: ``--configs``, else ``--precisions`` with the modifiers."""
    if args.configs:
        runs = [RunConfig.parse(text) for text in args.configs]
    elif args.precisions:
        runs = [RunConfig(p, not args.no_checkpointing, args.batch_size, args.compile) for p in args.precisions]
    else:
        runs = [RunConfig.parse(text) for text in DEFAULT_CONFIGS]
    return runs


def table(rows: list[dict], args, hardware: str) -> str:
    """The markdown table of ``rows`` with its caption, and the speed-up of the best default-precision
    row over int8."""
    layers = args.layers or (SMOKE if args.smoke else LLAMA2_7B)["num_hidden_layers"]
    lines = [
        f"### LoRA training throughput, Llama-2-7B shape{' (smoke: tiny model)' if args.smoke else ''} "
        f"({time.strftime('%Y-%m-%d')})",
        "",
        f"{hardware}; {layers} layers, random weights; seq len {args.seq_len}; LoRA r=8 on q_proj/v_proj; "
        f"SDPA attention; {args.steps} timed steps after {args.warmup} warm-up; "
        f"MFU = 4 x params x tokens/s / {args.peak_tflops:g} TFLOP/s.",
        "",
        "| precision | checkpointing | micro-batch | compile | step | params (B) | tokens/s | s/step | MFU "
        "| peak memory (GiB) |",
        "|---|---|---:|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        run = r["config"]
        head = (
            f"| {run.precision} | {'on' if run.checkpointing else 'off'} | {run.micro_batch} | "
            f"{'yes' if run.compile else 'no'} | {'SFTTrainer' if run.trainer else 'own loop'} |"
        )
        if r.get("oom"):
            lines.append(f"{head} - | OOM | - | - | - |")
        else:
            lines.append(
                f"{head} {r['params'] / 1e9:.2f} | {r['tokens_per_s']:,.0f} | {r['step_s']:.2f} | "
                f"{r['mfu']:.1%} | {r['peak_gib']:.1f} |"
            )
    done = [r for r in rows if not r.get("oom")]
    base = next((r for r in done if r["precision"] == "int8"), None)
    best = max((r for r in done if r["precision"] == "bf16"), key=lambda r: r["tokens_per_s"], default=None)
    if base and best:
        lines.append(
            f"\nbf16 ({best['config'].label}) is {best['tokens_per_s'] / base['tokens_per_s']:.2f}x the "
            f"tokens/s of int8 ({base['config'].label}); best bf16 MFU {best['mfu']:.1%}."
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--configs",
        nargs="+",
        help=f"precision[:nockpt][:mbN][:compile][:trainer] (default: {' '.join(DEFAULT_CONFIGS)})",
    )
    parser.add_argument(
        "--precisions",
        nargs="+",
        choices=["bf16", "int8", "nf4"],
        help="instead of --configs: these precisions with the modifiers below",
    )
    parser.add_argument(
        "--no-checkpointing", action="store_true", help="with --precisions: no activation checkpointing"
    )
    parser.add_argument("--compile", action="store_true", help="with --precisions: torch.compile the model")
    parser.add_argument("--batch-size", type=int, default=1, help="with --precisions: micro-batch (sequences/step)")
    parser.add_argument("--seq-len", type=int, help="tokens per sequence (default 2048; 64 with --smoke)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--layers", type=int, help="fewer layers for a quick try (default: all 32)")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="bf16 dense peak (H100/H200 SXM: 989)")
    parser.add_argument("--tokenizer", help="trainer configurations: a SentencePiece .model file (Llama-2/Mistral)")
    parser.add_argument("--tmp-dir", help="where the random weights are written for quantized loading")
    parser.add_argument("--smoke", action="store_true", help="tiny model on CPU (bf16, no compile): checks the path")
    parser.add_argument("--out", help="append the markdown table to this file")
    args = parser.parse_args(argv)
    args.seq_len = args.seq_len or (64 if args.smoke else 2048)
    try:
        runs = configs_from(args)
    except ValueError as exc:
        parser.error(str(exc))

    import torch

    if args.smoke:
        device, hardware = "cpu", "CPU (smoke)"
        skipped = [r for r in runs if r.precision != "bf16" or r.compile]
        runs = [r for r in runs if r not in skipped]
        for r in skipped:
            print(f"smoke: skipping {r.label} (CUDA only, or compile: too slow on CPU)", file=sys.stderr)
    elif not torch.cuda.is_available():
        print("train_throughput needs a CUDA GPU (or --smoke)", file=sys.stderr)
        return 2
    else:
        device, hardware = "cuda", torch.cuda.get_device_name()
    rows = []
    with tempfile.TemporaryDirectory(dir=args.tmp_dir) as tmp:
        for run in runs:
            rows.append(measure(run, args, Path(tmp), device))
            print({**rows[-1], "config": run.label}, flush=True)
    text = table(rows, args, hardware)
    print(text)
    if args.out:
        with open(args.out, "a", encoding="utf-8") as handle:
            handle.write("\n" + text)
    return 0 if any(not r.get("oom") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
