"""Latency of the served model: ``/invocations`` of a local ``mlflow models serve``, with its FLOP bound.

Four request kinds: score only (P(Yes) in one forward pass) and score + explanation (generated after
the scored label, at most ``--max-new-tokens``), each with 1 and 32 rows. Every request is timed from
the client (JSON in, JSON out, over 127.0.0.1); p50 and p95 over ``--repeats`` requests (``--batch-repeats``
for 32 rows).

The model is the product's own: a LoRA adapter (``--adapter DIR``, or one trained here with
:func:`reasoningrec.training.train.train_adapter` on ``--train-records`` of the paper authors' SFT records of
``--dataset``) on the embedded SmolLM2-135M, saved with the arguments the pipeline logs it with
(:func:`reasoningrec.serving.pyfunc_model_arguments`) and served by ``mlflow models serve
--env-manager local``. Requests are the authors' SFT test prompts (``prompt_text``).

The bounds beside each figure, per request: the **FLOP bound** is the request's floating-point work
(:mod:`benchmarks.scoring_flops`'s count: weights, causal attention, the LM head; the prompt again for
the explanation's prefill, every generated token with its attention over the context; LoRA's r=8
adds < 1% and is left out) divided by this machine's measured fp32 GEMM rate; the **weight-read
bound** is one read of every weight per decode step (a batch takes as many steps as its longest
explanation) at the measured memory read rate. Either is a floor the latency cannot go below.

    python -m benchmarks.serving_latency --out docs/performance.md
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scoring_flops import layer_weights  # noqa: E402

from benchmarks.docs_section import write_section

HEADING = "## Serving latency (`mlflow models serve`, 2-core CPU)"
KINDS = (("score", 1), ("score", 32), ("score + explanation", 1), ("score + explanation", 32))


# --------------------------------------------------------------------------- FLOPs and bounds (pure)


def prompt_flops(config, tokens: int) -> float:
    """FLOPs of one causal pass over ``tokens`` with the LM head at the last position only."""
    per_token = 2 * config.num_hidden_layers * layer_weights(config)
    attention = 2 * config.num_hidden_layers * tokens**2 * config.hidden_size
    return tokens * per_token + attention + 2 * config.hidden_size * config.vocab_size


def decode_flops(config, context: int, new_tokens: int) -> float:
    """FLOPs of ``new_tokens`` decode steps after a ``context``-token prefill (head and attention each step)."""
    per_token = 2 * config.num_hidden_layers * layer_weights(config) + 2 * config.hidden_size * config.vocab_size
    attention = sum(4 * config.num_hidden_layers * (context + step) * config.hidden_size for step in range(new_tokens))
    return new_tokens * per_token + attention


def request_flops(
    config, scored: list[int], explained: list[int] | None = None, generated: list[int] | None = None
) -> float:
    """FLOPs of one request: a scoring pass per row (``scored``: its tokens), and for an explanation a
    prefill of the prompt with the forced answer (``explained`` tokens) plus ``generated`` decode steps."""
    total = sum(prompt_flops(config, n) for n in scored)
    for context, new in zip(explained or [], generated or [], strict=True):
        total += prompt_flops(config, context) + decode_flops(config, context, new)
    return total


def weight_bytes(config, bytes_per_weight: int = 4) -> int:
    """Bytes of every weight one decode step reads (decoder layers + the tied embedding / LM head)."""
    return bytes_per_weight * (
        config.num_hidden_layers * layer_weights(config) + config.vocab_size * config.hidden_size
    )


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=float), q))


# --------------------------------------------------------------------------- this machine


def machine_rates(seconds: float = 2.0) -> tuple[float, float]:
    """(fp32 GEMM GFLOP/s, memory read GB/s), best of repeated runs, with torch's default threads."""
    import torch

    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    torch.mm(a, b)
    best_gemm, end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        start = time.perf_counter()
        torch.mm(a, b)
        best_gemm = max(best_gemm, 2 * 2048**3 / (time.perf_counter() - start) / 1e9)
    big = torch.ones(256 * 1024 * 1024)  # 1 GiB of fp32
    big.sum()
    best_read, end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        start = time.perf_counter()
        big.sum()
        best_read = max(best_read, big.numel() * 4 / (time.perf_counter() - start) / 1e9)
    return best_gemm, best_read


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# --------------------------------------------------------------------------- the model and the server


def paper_records(data_dir: Path, dataset: str, split: str, n: int) -> list[dict]:
    path = data_dir / "reasoningrec-paper" / dataset / f"sft_{split}.json.gz"
    if not path.is_file():
        raise SystemExit(f"{path}: not found (set --data-dir or $REASONINGREC_DATA_DIR to the shared data)")
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        rows = json.load(handle)
    return [
        {
            "prompt_text": f"{r['instruction']}\n\n{r['input']}",
            "completion_text": r["output"].strip(),
            "label": int(r["output"].strip().startswith("Prediction: Yes")),
        }
        for r in rows[:n]
    ]


def train_tiny_adapter(args, out_dir: Path) -> Path:
    """A LoRA adapter on the embedded model, 1 epoch of the repo's training on a few real records."""
    from reasoningrec.config import TrainConfig
    from reasoningrec.training.train import train_adapter

    train = paper_records(args.data_dir, args.dataset, "train", args.train_records)
    valid = paper_records(args.data_dir, args.dataset, "valid", args.train_records)
    cfg = TrainConfig(base_model="embedded", epochs=1, patience=1, batch_size=2, seed=0)
    started = time.perf_counter()
    result = train_adapter(
        "embedded",
        train,
        valid,
        cfg,
        out_dir,
        seed=0,
        score_batch_size=4,
        meta={"method": "reasoningrec", "variant": "full", "domain": args.dataset},
    )
    print(f"trained {result.adapter_dir} on {len(train)} records in {time.perf_counter() - started:.0f} s", flush=True)
    return Path(result.adapter_dir)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(model_dir: Path, port: int, log_path: Path) -> subprocess.Popen:
    mlflow_bin = Path(sys.executable).with_name("mlflow")
    command = [
        str(mlflow_bin if mlflow_bin.is_file() else "mlflow"),
        "models",
        "serve",
        "-m",
        str(model_dir),
        "--env-manager",
        "local",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "-w",
        "1",
        "-t",
        "7200",
    ]
    # mlflow models serve execs `uvicorn` by name: this interpreter's bin folder goes first on PATH.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "PATH": path, "MLFLOW_DISABLE_TELEMETRY": "true", "HF_HUB_OFFLINE": "1"}
    with open(log_path, "w") as log:  # its own process group: uvicorn's worker goes with it
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def wait_ready(url: str, server: subprocess.Popen, log_path: Path, timeout: float = 600) -> float:
    import httpx

    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if server.poll() is not None:
            tail = log_path.read_text(errors="replace")[-3000:] if log_path.is_file() else ""
            raise SystemExit(f"mlflow models serve exited with {server.returncode}:\n{tail}")
        try:
            if httpx.get(f"{url}/ping", timeout=5).status_code == 200:
                return time.perf_counter() - start
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"server not ready after {timeout} s")


def stop_server(server: subprocess.Popen) -> None:
    """Stop the server's process group (SIGTERM, then SIGKILL after 30 s)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(server.pid, sig)
            server.wait(timeout=30)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def body(prompts: list[str], explain: bool, max_new_tokens: int) -> dict:
    """An ``/invocations`` payload (the model's own batch size splits 32 rows into length-sorted batches)."""
    return {
        "dataframe_split": {"columns": ["prompt_text"], "data": [[p] for p in prompts]},
        "params": {"explain": explain, "max_new_tokens": max_new_tokens},
    }


def time_requests(url: str, bodies: list[dict]) -> tuple[list[float], list[dict]]:
    import httpx

    seconds, answers = [], []
    with httpx.Client(timeout=None) as client:
        for payload in bodies:
            start = time.perf_counter()
            response = client.post(f"{url}/invocations", json=payload)
            seconds.append(time.perf_counter() - start)
            if response.status_code != 200:
                raise SystemExit(f"/invocations answered {response.status_code}: {response.text[:500]}")
            answers.append(response.json())
    return seconds, answers


# --------------------------------------------------------------------------- the run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--adapter", type=Path, help="a trained adapter folder (default: train a tiny one here)")
    parser.add_argument("--train-records", type=int, default=8)
    parser.add_argument("--dataset", default="beauty")
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("REASONINGREC_DATA_DIR", "data/raw")))
    parser.add_argument("--repeats", type=int, default=10, help="requests per 1-row kind")
    parser.add_argument("--batch-repeats", type=int, default=3, help="requests per 32-row kind")
    parser.add_argument("--max-new-tokens", type=int, default=96, help="explanation cap (params.yaml's default)")
    parser.add_argument("--batch-size", type=int, default=8, help="the served model's batch size (llm.batch_size)")
    parser.add_argument("--out", type=Path, help="Markdown file whose section to replace (docs/performance.md)")
    args = parser.parse_args(argv)

    import mlflow
    from transformers import AutoConfig, AutoTokenizer

    from reasoningrec import serving
    from reasoningrec.answer import ANSWER_PREFIX, format_answer
    from reasoningrec.chat import render_chat
    from reasoningrec.models import resolve_model

    # `timeout` and Ctrl-C stop the server too (it runs in its own process group).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    gemm, read = machine_rates()
    print(f"machine: fp32 GEMM {gemm:.1f} GFLOP/s, memory read {read:.1f} GB/s", flush=True)
    work = Path(tempfile.mkdtemp(prefix="serving-latency-"))
    server = None
    try:
        adapter = args.adapter or train_tiny_adapter(args, work / "train")
        model_dir = work / "model"
        mlflow.pyfunc.save_model(
            model_dir,
            **serving.pyfunc_model_arguments(
                adapter,
                work / "staging",
                batch_size=args.batch_size,
                max_new_tokens=args.max_new_tokens,
                extra_config={"domain": args.dataset},
            ),
        )
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        load_before = os.getloadavg()
        server = start_server(model_dir, port, work / "server.log")
        ready = wait_ready(url, server, work / "server.log")
        print(f"server ready in {ready:.1f} s", flush=True)

        prompts = [r["prompt_text"] for r in paper_records(args.data_dir, args.dataset, "test", 32 + args.repeats)]
        tokenizer = AutoTokenizer.from_pretrained(adapter)
        config = AutoConfig.from_pretrained(resolve_model("embedded"))
        rows, results = [], {}
        time_requests(url, [body(prompts[:1], True, 4)])  # warm-up: first-call allocations
        for kind, size in KINDS:
            explain = kind != "score"
            repeats = args.repeats if size == 1 else args.batch_repeats
            batches = [prompts[i : i + 1] for i in range(repeats)] if size == 1 else [prompts[:32]] * repeats
            seconds, answers = time_requests(url, [body(b, explain, args.max_new_tokens) for b in batches])
            flops, steps, generated_all = [], [], []
            for batch, answer in zip(batches, answers, strict=True):
                rendered = [render_chat(tokenizer, text) for text in batch]
                scored = [len(tokenizer(r + ANSWER_PREFIX)["input_ids"]) for r in rendered]
                if explain:
                    predictions = answer["predictions"]
                    forced = [
                        len(tokenizer(r + format_answer(p["prediction"]) + "\n")["input_ids"])
                        for r, p in zip(rendered, predictions, strict=True)
                    ]
                    generated = [
                        min(
                            args.max_new_tokens,
                            len(tokenizer(p["explanation"], add_special_tokens=False)["input_ids"]) + 1,
                        )
                        for p in predictions
                    ]
                    flops.append(request_flops(config, scored, forced, generated))
                    steps.append(max(generated))
                    generated_all += generated
                else:
                    flops.append(request_flops(config, scored))
                    steps.append(0)
            gflop = float(np.mean(flops)) / 1e9
            row = {
                "kind": kind,
                "rows": size,
                "requests": repeats,
                "p50_s": percentile(seconds, 50),
                "p95_s": percentile(seconds, 95),
                "gflop": gflop,
                "flop_bound_s": gflop / gemm,
                "read_bound_s": float(np.mean(steps)) * weight_bytes(config) / 1e9 / read,
                "mean_generated": float(np.mean(generated_all)) if generated_all else 0.0,
                "mean_prompt_tokens": float(
                    np.mean([len(tokenizer(render_chat(tokenizer, p))["input_ids"]) for b in batches for p in b])
                ),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
        results = {
            "rows": rows,
            "gemm_gflops": gemm,
            "read_gbs": read,
            "ready_s": ready,
            "load_before": load_before,
            "load_after": os.getloadavg(),
            "adapter": "given" if args.adapter else f"trained here on {args.train_records} records",
        }
    finally:
        if server is not None:
            stop_server(server)
        shutil.rmtree(work, ignore_errors=True)
    section = render(results, args)
    print(section)
    if args.out:
        write_section(args.out, HEADING, section)
    return 0


def render(results: dict, args) -> str:
    torch_threads = __import__("torch").get_num_threads()
    lines = [
        HEADING,
        "",
        f"Command: `python -m benchmarks.serving_latency --out docs/performance.md` ({time.strftime('%Y-%m-%d')}).  ",
        f"Machine: {cpu_name()}, {os.cpu_count()} cores, torch {torch_threads} threads, fp32; measured peaks "
        f"{results['gemm_gflops']:.1f} GFLOP/s (2048² GEMM) and {results['read_gbs']:.1f} GB/s (memory read); "
        f"load average {results['load_before'][0]:.1f} before, {results['load_after'][0]:.1f} after (the box is "
        "shared).  ",
        f"Model: the embedded SmolLM2-135M + a LoRA adapter ({results['adapter']} of the authors' "
        f"{args.dataset} SFT records, r=8 on q/v), saved as the pipeline logs it and served by `mlflow models serve "
        f"--env-manager local -w 1`, model batch size {args.batch_size} (`llm.batch_size`; ready "
        f"{results['ready_s']:.0f} s after start). Requests: `prompt_text` rows "
        f"of the authors' {args.dataset} SFT test records; explanations at most {args.max_new_tokens} new tokens "
        "(`evaluate.explain_max_new_tokens`); timed at the client over 127.0.0.1.",
        "",
        "| request | rows | requests | prompt tokens (mean) | generated tokens (mean) | p50 s | p95 s | GFLOP | "
        "FLOP bound s | weight-read bound s | p50 / max(bound) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in results["rows"]:
        bound = max(row["flop_bound_s"], row["read_bound_s"])
        lines.append(
            f"| {row['kind']} | {row['rows']} | {row['requests']} | {row['mean_prompt_tokens']:.0f} | "
            f"{row['mean_generated']:.0f} | {row['p50_s']:.2f} | {row['p95_s']:.2f} | {row['gflop']:,.0f} | "
            f"{row['flop_bound_s']:.2f} | {row['read_bound_s']:.2f} | {row['p50_s'] / bound:.1f}x |"
        )
    lines += [
        "",
        "The FLOP bound is the request's work at the measured GEMM peak; the weight-read bound is one read of the "
        "fp32 weights per decode step (the longest explanation of a batch sets its steps) at the measured read "
        f"rate. With {args.batch_repeats} requests of 32 rows, their p95 is close to their maximum.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
