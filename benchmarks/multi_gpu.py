"""Scaling over the GPUs of one host: LoRA training and local synthesis on 1 vs N GPUs, 7B shape.

Both measurements run the product's multi-device code, with a Llama-2-7B configuration of random
bf16 weights (the shapes, not the weights, set the speed):

* **training**: ``torchrun --standalone --nproc-per-node n`` of this module's training worker, which
  splits the same global batch (``--global-batch`` sequences of ``--seq-len`` random tokens per
  optimizer step) with :func:`reasoningrec.training.distributed.per_process_batch`, wraps the LoRA
  model of ``params.yaml``'s recipe (:func:`reasoningrec.training.arguments.lora_config`, r=8 on
  q_proj/v_proj) in DistributedDataParallel (NCCL; gloo on CPU) and times ``--steps`` optimizer
  steps after ``--warmup``. Tokens/s = global batch x seq len x steps / the slowest rank's time.
* **synthesis**: :class:`reasoningrec.llm.multi.MultiDeviceBackend` over 1 and over n worker
  processes, each building the random model on its device behind the ordinary HF backend; every
  prompt is decoded to exactly ``--new-tokens`` tokens (``min_new_tokens``). Tokens/s = generated
  tokens / wall time of one call, after a warm-up call that starts the workers and loads the models.

Scaling efficiency = tokens/s on n / (n x tokens/s on 1); the goal is >= 0.9 (>= 1.8x on 2 GPUs).
Without at least two visible GPUs it refuses (exit 2); ``--smoke`` runs the same code on two CPU
processes with a tiny model of the same family, which proves the path and measures nothing useful.

    python -m benchmarks.multi_gpu --gpus 2 --out docs/performance.md   # the figures (2 GPUs)
    python -m benchmarks.multi_gpu --smoke                              # the path, on 2 CPU processes
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

from benchmarks.train_throughput import LLAMA2_7B, SMOKE

WORKER_FLAG = "--train-worker"
ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- the model


def model_config(smoke: bool, layers: int | None = None):
    from transformers import LlamaConfig

    shape = {**LLAMA2_7B, **(SMOKE if smoke else {}), **({"num_hidden_layers": layers} if layers else {})}
    return LlamaConfig(**shape, bos_token_id=1, eos_token_id=2, pad_token_id=0, attn_implementation="sdpa")


def random_model(device: str, smoke: bool, layers: int | None = None):
    """The random model on ``device``: bf16 on a GPU, fp32 on the CPU (seeded: every process builds
    the same weights, as ranks loading one checkpoint would)."""
    import torch
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            return LlamaForCausalLM(model_config(smoke, layers))
    finally:
        torch.set_default_dtype(previous)


# ---------------------------------------------------------------- training (one rank)


def train_worker(args) -> None:
    """One rank of a torchrun launch: time LoRA steps of the global batch; rank 0 writes the result."""
    import torch
    import torch.distributed as dist
    from peft import get_peft_model
    from torch.nn.parallel import DistributedDataParallel

    from reasoningrec.config import TrainConfig
    from reasoningrec.training.arguments import lora_config
    from reasoningrec.training.distributed import per_process_batch, world_from_env

    world = world_from_env()
    cuda = not args.smoke
    if cuda:
        torch.cuda.set_device(world.local_rank)
    dist.init_process_group("nccl" if cuda else "gloo")
    device = f"cuda:{world.local_rank}" if cuda else "cpu"
    micro, accumulation = per_process_batch(args.micro_batch, args.global_batch // args.micro_batch, world.size)
    model = get_peft_model(random_model(device, args.smoke, args.layers), lora_config(TrainConfig()))
    if args.checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    ddp = DistributedDataParallel(model, device_ids=[world.local_rank] if cuda else None, find_unused_parameters=False)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    generator = torch.Generator().manual_seed(world.rank)
    vocab = model.config.vocab_size

    def step() -> None:
        for i in range(accumulation):
            tokens = torch.randint(3, vocab, (micro, args.seq_len), generator=generator).to(device)
            context = ddp.no_sync() if i < accumulation - 1 else contextlib.nullcontext()
            with context, torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
                loss = ddp(input_ids=tokens, labels=tokens).loss / accumulation
                loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(args.warmup):
        step()
    if cuda:
        torch.cuda.synchronize()
    dist.barrier()
    started = time.perf_counter()
    for _ in range(args.steps):
        step()
    if cuda:
        torch.cuda.synchronize()
    seconds = torch.tensor([time.perf_counter() - started], dtype=torch.float64, device=device)
    dist.all_reduce(seconds, op=dist.ReduceOp.MAX)
    if world.rank == 0:
        slowest = float(seconds.item())
        tokens = args.global_batch * args.seq_len * args.steps
        Path(args.json_out).write_text(
            json.dumps(
                {
                    "processes": world.size,
                    "micro_batch": micro,
                    "accumulation": accumulation,
                    "seconds": slowest,
                    "tokens_per_s": tokens / slowest,
                    "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
                }
            )
        )
    dist.destroy_process_group()


def measure_training(processes: int, args) -> dict:
    """Launch the training worker on ``processes`` processes and read rank 0's result."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "train.json"
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc-per-node={processes}",
            "-m",
            "benchmarks.multi_gpu",
            WORKER_FLAG,
            "--json-out",
            str(out),
            *_shared_flags(args),
        ]
        env = dict(os.environ)
        if args.smoke:
            env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // processes))
        done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT)
        if done.returncode != 0 or not out.is_file():
            raise RuntimeError(
                f"training on {processes} process(es) failed (exit code {done.returncode}):\n"
                + "\n".join((done.stdout + done.stderr).splitlines()[-25:])
            )
        return json.loads(out.read_text())


def _shared_flags(args) -> list[str]:
    flags = [
        "--seq-len",
        str(args.seq_len),
        "--global-batch",
        str(args.global_batch),
        "--micro-batch",
        str(args.micro_batch),
        "--steps",
        str(args.steps),
        "--warmup",
        str(args.warmup),
    ]
    flags += ["--smoke"] if args.smoke else []
    flags += ["--checkpointing"] if args.checkpointing else []
    flags += ["--layers", str(args.layers)] if args.layers else []
    return flags


# ---------------------------------------------------------------- synthesis


def random_backend(device: str, *, smoke: bool, layers: int | None, batch_size: int, new_tokens: int, engine: str):
    """What each synthesis worker runs: the HF backend around the random model on its device."""
    from reasoningrec.llm.hf import HFBackend
    from reasoningrec.testing import build_tiny_tokenizer

    model = random_model(device, smoke, layers)
    model.eval()
    return HFBackend.from_loaded(
        model,
        build_tiny_tokenizer(),
        "random-7b-shape",
        batch_size=batch_size,
        engine=engine,
        generate_kwargs={"min_new_tokens": new_tokens},
    )


def measure_synthesis(devices: list[str], args) -> dict:
    from benchmarks.llm_throughput import make_prompts
    from reasoningrec.llm.base import GenerationSettings
    from reasoningrec.llm.multi import MultiDeviceBackend

    factory = partial(
        random_backend,
        smoke=args.smoke,
        layers=args.layers,
        batch_size=args.batch_size,
        new_tokens=args.new_tokens,
        engine=args.engine,
    )
    backend = MultiDeviceBackend(factory, devices, name="hf", model_id="random-7b-shape", batch_size=args.batch_size)
    settings = GenerationSettings(temperature=0.0, max_new_tokens=args.new_tokens)
    prompts = make_prompts(args.prompts)
    try:
        backend.generate(prompts[: len(devices) * args.batch_size], settings)  # start, load, warm up
        started = time.perf_counter()
        replies = backend.generate(prompts, settings)
        seconds = time.perf_counter() - started
    finally:
        backend.close()
    tokens = sum(g.completion_tokens for g in replies)
    return {"processes": len(devices), "seconds": seconds, "tokens": tokens, "tokens_per_s": tokens / seconds}


# ---------------------------------------------------------------- the table


def efficiency(one: float, many: float, n: int) -> float:
    """Tokens/s on ``n`` devices as a fraction of ``n`` times the tokens/s on one."""
    return many / (n * one)


def table(train: list[dict], synth: list[dict], args, hardware: str) -> str:
    layers = args.layers or (SMOKE if args.smoke else LLAMA2_7B)["num_hidden_layers"]
    lines = [
        f"### Multi-GPU scaling, Llama-2-7B shape{' (smoke: tiny model, CPU processes)' if args.smoke else ''}",
        "",
        f"`python -m benchmarks.multi_gpu {' '.join(sys.argv[1:])}`".replace("  ", " "),
        f"on {hardware}, {datetime.date.today().isoformat()}; {layers} layers, random weights. Training: global "
        f"batch {args.global_batch} x {args.seq_len} tokens, LoRA r=8 q_proj/v_proj, DDP"
        f"{', activation checkpointing' if args.checkpointing else ''}. Synthesis: {args.prompts} prompts, "
        f"{args.new_tokens} new tokens each, batch {args.batch_size} per device, engine {args.engine}.",
        "",
        "| work | devices | micro-batch x accumulation | tokens/s | speed-up | scaling efficiency |",
        "|---|---|---|---|---|---|",
    ]
    for name, rows in (("LoRA training", train), ("synthesis", synth)):
        if not rows:
            continue
        base = rows[0]["tokens_per_s"]
        for row in rows:
            n = row["processes"]
            shape = f"{row['micro_batch']} x {row['accumulation']}" if "micro_batch" in row else "-"
            lines.append(
                f"| {name} | {n} | {shape} | {row['tokens_per_s']:,.0f} | {row['tokens_per_s'] / base:.2f}x "
                f"| {efficiency(base, row['tokens_per_s'], n):.0%} |"
            )
    return "\n".join(lines) + "\n"


def hardware_name(gpus: int, smoke: bool) -> str:
    if smoke:
        return f"{os.cpu_count()}-core {platform.machine()} CPU ({gpus} CPU processes)"
    import torch

    return f"{gpus} x {torch.cuda.get_device_name(0)}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpus", type=int, help="devices of the N run (default: every visible GPU; 2 with --smoke)")
    parser.add_argument("--smoke", action="store_true", help="tiny model on 2 CPU processes: the path only")
    parser.add_argument("--seq-len", type=int, help="tokens per training sequence (default 2048; 32 with --smoke)")
    parser.add_argument("--global-batch", type=int, default=8, help="sequences per optimizer step, on every N")
    parser.add_argument("--micro-batch", type=int, default=1, help="largest sequences per forward pass per device")
    parser.add_argument("--checkpointing", action="store_true", help="activation checkpointing in training")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--layers", type=int, help="fewer layers for a quick try (default: all 32)")
    parser.add_argument("--prompts", type=int, help="synthesis prompts (default 256; 8 with --smoke)")
    parser.add_argument("--batch-size", type=int, default=16, help="synthesis prompts per forward pass per device")
    parser.add_argument("--new-tokens", type=int, help="tokens generated per prompt (default 128; 4 with --smoke)")
    parser.add_argument("--engine", default="auto", choices=["auto", "generate", "static"])
    parser.add_argument("--skip", choices=["training", "synthesis"], help="measure only the other one")
    parser.add_argument("--out", help="append the markdown table to this file")
    parser.add_argument(WORKER_FLAG, action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--json-out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.seq_len = args.seq_len or (32 if args.smoke else 2048)
    args.prompts = args.prompts or (8 if args.smoke else 256)
    args.new_tokens = args.new_tokens or (4 if args.smoke else 128)
    if args.smoke:
        args.batch_size = min(args.batch_size, 2)
    if args.train_worker:
        train_worker(args)
        return 0

    if args.smoke:
        gpus = args.gpus or 2
        devices = ["cpu"] * gpus
    else:
        import torch

        visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
        gpus = args.gpus or visible
        if visible < 2 or gpus < 2 or gpus > visible:
            print(
                f"multi_gpu needs at least 2 visible GPUs and --gpus within them (visible: {visible}, "
                f"--gpus {args.gpus}); --smoke runs the same code on 2 CPU processes",
                file=sys.stderr,
            )
            return 2
        devices = [f"cuda:{i}" for i in range(gpus)]
    if args.global_batch % gpus or args.global_batch % args.micro_batch:
        parser.error(f"--global-batch {args.global_batch} must be a multiple of --gpus {gpus} and --micro-batch")
    train = [] if args.skip == "training" else [measure_training(n, args) for n in (1, gpus)]
    synth = [] if args.skip == "synthesis" else [measure_synthesis(devices[:n], args) for n in (1, gpus)]
    for row in (*train, *synth):
        print(json.dumps(row), flush=True)
    text = table(train, synth, args, hardware_name(gpus, args.smoke))
    print(text)
    if args.out:
        with open(args.out, "a", encoding="utf-8") as handle:
            handle.write("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
