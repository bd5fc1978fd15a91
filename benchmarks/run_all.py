"""Every benchmark of ``benchmarks/`` in a quick mode, one after another; ``make bench`` runs this.

Each benchmark runs in its own process (``python -m benchmarks.<module>``) with small settings that
check its whole path in seconds: the data stages on the real ML-1M (the one-million-row size only),
the scoring and training benchmarks on the tiny random test model or their ``--smoke`` shapes on the
CPU, the FLOP count of the embedded model. A benchmark that needs what this machine lacks (a CUDA GPU,
the real data under ``$REASONINGREC_DATA_DIR`` or ``data/raw``, an input only its user has) is skipped
with the reason. The quick figures check that the benchmarks run; the figures in ``docs/`` come from
each benchmark's own full command (its module docstring). Nothing here writes into ``docs/``.

    python -m benchmarks.run_all            # run what this machine can, print a summary
    python -m benchmarks.run_all --list     # what would run, and what is skipped and why
    python -m benchmarks.run_all --only scoring_speed data_pipeline

The exit status is 1 when a benchmark failed (skips are not failures), 2 for an unknown name.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TAIL_LINES = 25  # output lines shown for a failed benchmark


def data_dir() -> Path:
    """The raw data root the benchmarks read: ``$REASONINGREC_DATA_DIR``, else ``data/raw``."""
    return Path(os.environ.get("REASONINGREC_DATA_DIR") or ROOT / "data" / "raw")


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


@dataclass(frozen=True)
class Benchmark:
    """One quick benchmark call. ``args`` may hold ``{tiny_model}`` (the tiny random test model,
    built once per run) and ``{work}`` (a temporary folder of its own); ``data`` are the files under
    the raw data root it reads; ``cuda``: it runs on a CUDA GPU only."""

    name: str
    module: str
    args: tuple[str, ...]
    what: str
    data: tuple[str, ...] = ()
    cuda: bool = False
    unavailable: str | None = None  # a fixed reason it never runs in quick mode

    def command(self, tiny_model: Path | None, work: Path) -> list[str]:
        values = {"tiny_model": str(tiny_model), "work": str(work)}
        return [sys.executable, "-m", f"benchmarks.{self.module}", *(a.format(**values) for a in self.args)]

    def needs(self, has_cuda: Callable[[], bool] = cuda_available) -> str | None:
        """Why it cannot run on this machine, or None when it can."""
        if self.unavailable:
            return self.unavailable
        missing = [name for name in self.data if not (data_dir() / name).exists()]
        if missing:
            return f"needs {', '.join(missing)} under {data_dir()} (set REASONINGREC_DATA_DIR)"
        if self.cuda and not has_cuda():
            return "needs a CUDA GPU"
        return None

    @property
    def uses_tiny_model(self) -> bool:
        return any("{tiny_model}" in a for a in self.args)


ML1M = "ml-1m/ratings_no_timestamp.dat.gz"
BENCHMARKS = (
    Benchmark(
        "data_pipeline",
        "data_pipeline",
        (),
        "ingest + validate + prepare of ML-1M in one process (wall s, peak RSS)",
        data=(ML1M,),
    ),
    Benchmark(
        "data_scale",
        "data_scale",
        ("--sizes", "1", "--amazon", "--work", "{work}"),
        "the data stages at the 1M-rating size, each stage in a fresh process",
        data=(ML1M,),
    ),
    Benchmark(
        "scoring_flops",
        "scoring_flops",
        ("--prompt-tokens", "624"),
        "GFLOP per record of one-pass scoring vs the paper's generate-256 recipe (embedded SmolLM2)",
    ),
    Benchmark(
        "scoring_speed",
        "scoring_speed",
        ("--model", "{tiny_model}", "--n", "8", "--batch-size", "4", "--pad-to", "64", "--new-tokens", "8"),
        "one-pass P(Yes) vs the paper's recipe, same model and records (tiny model, 8 records)",
    ),
    Benchmark(
        "explain_speed",
        "explain_speed",
        ("--model", "{tiny_model}", "--n", "2", "--batch-sizes", "1", "2", "--max-new-tokens", "4"),
        "explanations/s and latency per explanation, as the experiment writes them (tiny model)",
    ),
    Benchmark(
        "train_throughput",
        "train_throughput",
        ("--smoke", "--configs", "bf16:nockpt", "bf16:nockpt:trainer", "--steps", "2", "--warmup", "1"),
        "LoRA training tokens/s, own loop and the product's SFTTrainer (smoke shape on the CPU)",
    ),
    Benchmark(
        "llm_throughput",
        "llm_throughput",
        (
            "--smoke",
            "--model",
            "mistral-7b-random",
            "--engines",
            "static",
            "generate",
            "--batch-size",
            "2",
            "--new-tokens",
            "3",
            "--naive-prompts",
            "1",
            "--warmup",
            "0",
        ),
        "batched generation tokens/s vs one prompt at a time, both engines (smoke shape on the CPU)",
    ),
    Benchmark(
        "multi_gpu",
        "multi_gpu",
        ("--smoke", "--steps", "1", "--warmup", "1", "--prompts", "4"),
        "LoRA training and synthesis tokens/s on 1 vs 2 processes (smoke shape, 2 CPU processes)",
    ),
    Benchmark(
        "multi_gpu_gpus",
        "multi_gpu",
        ("--layers", "4", "--steps", "3", "--prompts", "64", "--new-tokens", "32"),
        "LoRA training and synthesis of the Llama-2-7B shape on 1 vs 2 GPUs, scaling efficiency",
        unavailable="needs 2+ GPUs: python -m benchmarks.multi_gpu --gpus 2",
    ),
    Benchmark(
        "train_throughput_gpu",
        "train_throughput",
        ("--configs", "bf16", "bf16:nockpt", "int8", "--layers", "2", "--steps", "3", "--warmup", "1"),
        "LoRA training of the Llama-2-7B shape (2 layers): bf16 vs the paper's 8-bit recipe",
        cuda=True,
    ),
    Benchmark(
        "llm_throughput_gpu",
        "llm_throughput",
        (
            "--model",
            "mistral-7b-random",
            "--engines",
            "static",
            "generate",
            "--batch-size",
            "16",
            "--new-tokens",
            "32",
            "--naive-prompts",
            "1",
        ),
        "batched generation of the random Mistral-7B shape in bf16",
        cuda=True,
    ),
    Benchmark(
        "serving_latency",
        "serving_latency",
        (),
        "/invocations p50/p95 of the served model (score, score + explanation; 1 and 32 rows), FLOP bound",
        unavailable="tens of minutes on 2 cores: python -m benchmarks.serving_latency --out docs/performance.md",
    ),
    Benchmark(
        "demo_wall",
        "",
        (),
        "wall time and peak memory of the main job (`reasoningrec run`) from a cold start",
        unavailable="minutes: run `bash benchmarks/demo_wall.sh`",
    ),
)


@dataclass
class Outcome:
    benchmark: Benchmark
    status: str  # ok | failed | skipped
    seconds: float = 0.0
    note: str = ""


def run_one(benchmark: Benchmark, tiny_model: Path | None, timeout: float) -> Outcome:
    """Run one benchmark in its own process; its output streams through, a failure shows its tail."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    with tempfile.TemporaryDirectory(prefix=f"bench-{benchmark.name}-") as work:
        command = benchmark.command(tiny_model, Path(work))
        print(f"\n=== {benchmark.name}: {' '.join(command[1:])}", flush=True)
        started = time.perf_counter()
        try:
            done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return Outcome(benchmark, "failed", time.perf_counter() - started, f"timed out after {timeout:g} s")
        seconds = time.perf_counter() - started
    output = (done.stdout + done.stderr).rstrip().splitlines()
    if done.returncode != 0:
        print("\n".join(output[-TAIL_LINES:]), flush=True)
        return Outcome(benchmark, "failed", seconds, f"exit status {done.returncode}")
    print("\n".join(line for line in done.stdout.rstrip().splitlines() if line.strip()), flush=True)
    return Outcome(benchmark, "ok", seconds)


def build_tiny_model(folder: Path) -> Path:
    from reasoningrec.testing import build_tiny_chat_model

    return build_tiny_chat_model(folder / "tiny-model")


def run_all(selected: Sequence[Benchmark], timeout: float) -> list[Outcome]:
    outcomes, runnable = [], []
    for benchmark in selected:
        reason = benchmark.needs()
        if reason:
            outcomes.append(Outcome(benchmark, "skipped", note=reason))
        else:
            runnable.append(benchmark)
    with tempfile.TemporaryDirectory(prefix="bench-tiny-") as tmp:
        tiny = build_tiny_model(Path(tmp)) if any(b.uses_tiny_model for b in runnable) else None
        outcomes += [run_one(b, tiny, timeout) for b in runnable]
    order = {b.name: i for i, b in enumerate(selected)}
    return sorted(outcomes, key=lambda o: order[o.benchmark.name])


def summary(outcomes: Sequence[Outcome]) -> str:
    lines = ["| benchmark | status | seconds | note |", "|---|---|---:|---|"]
    for o in outcomes:
        seconds = f"{o.seconds:.1f}" if o.status != "skipped" else ""
        lines.append(f"| {o.benchmark.name} | {o.status} | {seconds} | {o.note or o.benchmark.what} |")
    counts = {s: sum(o.status == s for o in outcomes) for s in ("ok", "failed", "skipped")}
    lines.append(f"\n{counts['ok']} ok, {counts['failed']} failed, {counts['skipped']} skipped")
    return "\n".join(lines)


def listing(selected: Sequence[Benchmark]) -> str:
    lines = []
    for b in selected:
        reason = b.needs()
        call = f"python -m benchmarks.{b.module} {' '.join(b.args)}".rstrip() if b.module else ""
        lines.append(f"{b.name}: {b.what}\n    {'skip: ' + reason if reason else 'run: ' + call}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--list", action="store_true", help="list the benchmarks, what runs and what is skipped")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run these benchmarks only")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds one benchmark may take")
    args = parser.parse_args(argv)
    names = [b.name for b in BENCHMARKS]
    unknown = sorted(set(args.only or ()) - set(names))
    if unknown:
        print(f"unknown benchmark(s) {', '.join(unknown)} (known: {', '.join(names)})", file=sys.stderr)
        return 2
    selected = [b for b in BENCHMARKS if not args.only or b.name in args.only]
    if args.list:
        print(listing(selected))
        return 0
    outcomes = run_all(selected, args.timeout)
    print("\n" + summary(outcomes))
    return 1 if any(o.status == "failed" for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
