"""Generated tokens/s of the batched HF backend versus a naive one-prompt-at-a-time loop.

Both runs use the same loaded model, the same greedy settings and a fixed output length
(``min_new_tokens`` = ``max_new_tokens``, so EOS never ends a reply early). On CUDA both use a static
KV cache, which makes transformers compile the decode step (``torch.compile``, CUDA graphs); every
shape is warmed up once before timing. The decode roofline fraction is

    (bytes of weights read per decode step x decode steps/s) / HBM bandwidth

i.e. how close the batched run comes to streaming every weight once per generated token position.

Examples::

    python -m benchmarks.llm_throughput --model embedded --device cpu --batch-size 8 --new-tokens 16
    python -m benchmarks.llm_throughput --model llama2-7b-random --batch-size 64 --new-tokens 128 --out docs/bench.md
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from reasoningrec.llm.base import GenerationSettings, Message

log = logging.getLogger("benchmarks.llm_throughput")

RANDOM_7B = "llama2-7b-random"
# Tokenizers with Llama-2's 32000-token vocabulary that may sit in the offline HF cache.
LLAMA_TOKENIZERS = (
    "meta-llama/Llama-2-7b-hf",
    "meta-llama/Llama-2-7b-chat-hf",
    "hf-internal-testing/llama-tokenizer",
)
LLAMA2_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'system' %}<<SYS>>\n{{ m['content'] }}\n<</SYS>>\n\n"
    "{% elif m['role'] == 'user' %}{{ bos_token }}[INST] {{ m['content'] }} [/INST]"
    "{% else %} {{ m['content'] }} {{ eos_token }}{% endif %}{% endfor %}"
)
HEADER = (
    "| model | device | dtype | batch | new tokens | batched tok/s | naive tok/s | speedup | roofline |\n"
    "|---|---|---|---:|---:|---:|---:|---:|---:|"
)
TOPICS = [
    "a hydrating face cream with a light citrus scent",
    "a science-fiction movie about first contact",
    "a pair of leather ankle boots",
    "an eau de parfum with vanilla notes",
    "a documentary on deep-sea creatures",
    "a wool scarf in dark green",
    "a shampoo for dry and curly hair",
    "a romantic comedy set in Paris",
]


@dataclass(frozen=True)
class Result:
    model: str
    device: str
    dtype: str
    batch_size: int
    new_tokens: int
    batched_tps: float
    naive_tps: float
    roofline: float | None

    def row(self) -> str:
        roof = f"{self.roofline:.0%}" if self.roofline is not None else "n/a"
        return (
            f"| {self.model} | {self.device} | {self.dtype} | {self.batch_size} | {self.new_tokens} | "
            f"{self.batched_tps:,.1f} | {self.naive_tps:,.1f} | {self.batched_tps / self.naive_tps:.1f}x | {roof} |"
        )


def make_prompts(n: int) -> list[list[Message]]:
    """``n`` recommendation-style chat prompts of varied length."""
    prompts = []
    for i in range(n):
        history = "; ".join(TOPICS[(i + j) % len(TOPICS)] for j in range(1 + i % 4))
        prompts.append(
            [
                {"role": "system", "content": "You are an expert recommender. Answer briefly."},
                {
                    "role": "user",
                    "content": f"The user liked: {history}. Will they like {TOPICS[i % len(TOPICS)]}? "
                    "Answer Yes or No, then explain.",
                },
            ]
        )
    return prompts


def weight_bytes_per_step(model) -> int:
    """Bytes of weights one decode step reads: every parameter, except an untied input embedding
    (only a few of its rows are gathered)."""
    embedding = model.get_input_embeddings().weight
    output = model.get_output_embeddings()
    tied = output is not None and output.weight is embedding
    total = 0
    for param in model.parameters():
        if param is embedding and not tied:
            continue
        total += param.numel() * param.element_size()
    return total


def default_hbm_gbps(device: str) -> float | None:
    """HBM bandwidth of the GPU in GB/s: 4800 on an H200, else 3350 (H100 SXM); None on CPU."""
    import torch

    if not device.startswith("cuda"):
        return None
    name = torch.cuda.get_device_name(torch.device(device))
    return 4800.0 if "H200" in name else 3350.0


def llama2_7b_config():
    """Llama-2-7B's architecture: 32 layers, hidden 4096, MLP 11008, 32 heads, 32000-token vocabulary."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=32000,
        hidden_size=4096,
        intermediate_size=11008,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=32,
        max_position_embeddings=4096,
        rms_norm_eps=1e-5,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
        tie_word_embeddings=False,
    )


def random_llama2_7b(device: str, tokenizer: str | None):
    """A correctly shaped Llama-2-7B (random bf16 weights built on the device) and a 32000-token tokenizer."""
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM

    config = llama2_7b_config()
    with torch.device(device):
        model = LlamaForCausalLM._from_config(config, dtype=torch.bfloat16)
    model.eval()
    tok = None
    for candidate in ([tokenizer] if tokenizer else []) + list(LLAMA_TOKENIZERS):
        try:
            path = Path(candidate)
            if path.suffix == ".gguf":
                tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
            else:
                tok = AutoTokenizer.from_pretrained(candidate, local_files_only=True)
            log.info("tokenizer: %s", candidate)
            break
        except Exception as exc:  # not in the offline cache: try the next one
            log.debug("tokenizer %s unavailable: %s", candidate, exc)
    if tok is None:
        from reasoningrec.testing import build_tiny_tokenizer

        log.warning(
            "no Llama tokenizer offline: using the tiny test tokenizer (ids < 32000, shapes unchanged)"
        )
        tok = build_tiny_tokenizer()
    if tok.chat_template is None:
        tok.chat_template = LLAMA2_TEMPLATE
    if tok.pad_token_id is None:
        tok.pad_token = tok.unk_token or tok.eos_token
    return model, tok


def load(model_name: str, device: str, dtype: str, tokenizer: str | None):
    if model_name == RANDOM_7B:
        return random_llama2_7b(device, tokenizer)
    from reasoningrec.llm.embedded import resolve_model
    from reasoningrec.llm.hf import load_model

    model, tok, _ = load_model(resolve_model(model_name), dtype=dtype, device=device)
    return model, tok


def timed(backend, batches, settings) -> tuple[int, float]:
    """Completion tokens generated and seconds taken over ``batches``."""
    import torch

    if str(backend.load()[2]).startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    tokens = 0
    for batch in batches:
        tokens += sum(g.completion_tokens for g in backend.generate(batch, settings))
    if str(backend.load()[2]).startswith("cuda"):
        torch.cuda.synchronize()
    return tokens, time.perf_counter() - start


def run(args: argparse.Namespace) -> Result:
    import torch

    from reasoningrec.llm.hf import HFBackend

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model, tok = load(args.model, device, args.dtype, args.tokenizer)
    static = args.static_cache == "on" or (args.static_cache == "auto" and device.startswith("cuda"))
    extra = {"min_new_tokens": args.new_tokens}
    if static:
        extra["cache_implementation"] = "static"
    settings = GenerationSettings(temperature=0, max_new_tokens=args.new_tokens)
    batched = HFBackend.from_loaded(model, tok, args.model, batch_size=args.batch_size, generate_kwargs=extra)
    naive = HFBackend.from_loaded(model, tok, args.model, batch_size=1, generate_kwargs=extra)

    prompts = make_prompts(args.batch_size)
    singles = [[p] for p in prompts[: args.naive_prompts]]
    for _ in range(args.warmup):  # compile / allocate at the exact shapes that are timed
        batched.generate(prompts, settings)
        for single in singles:
            naive.generate(single, settings)

    b_tokens, b_seconds = timed(batched, [prompts] * args.repeats, settings)
    n_tokens, n_seconds = timed(naive, singles, settings)
    expected = args.batch_size * args.new_tokens * args.repeats
    if b_tokens != expected:
        raise RuntimeError(f"batched run generated {b_tokens} tokens, expected {expected}")

    hbm = args.hbm_gbps or default_hbm_gbps(device)
    steps_per_s = args.new_tokens * args.repeats / b_seconds
    roofline = weight_bytes_per_step(model) * steps_per_s / (hbm * 1e9) if hbm else None
    return Result(
        model=args.model,
        device=torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else "cpu",
        dtype=str(next(model.parameters()).dtype).removeprefix("torch."),
        batch_size=args.batch_size,
        new_tokens=args.new_tokens,
        batched_tps=b_tokens / b_seconds,
        naive_tps=n_tokens / n_seconds,
        roofline=roofline,
    )


def append_row(path: Path, row: str) -> None:
    """Append ``row`` under the table header (written when the file is new), atomically."""
    from reasoningrec.io import atomic_open

    old = path.read_text(encoding="utf-8") if path.exists() else HEADER + "\n"
    with atomic_open(path) as handle:
        handle.write(old if old.endswith("\n") else old + "\n")
        handle.write(row + "\n")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--model", default="embedded", help=f"hub id, local folder, 'embedded' or {RANDOM_7B!r}"
    )
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--device", default=None, help="cuda, cuda:1, cpu (default: cuda when present)")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16"])
    parser.add_argument(
        "--hbm-gbps", type=float, default=None, help="HBM GB/s (default: 3350 H100 SXM, 4800 H200)"
    )
    parser.add_argument(
        "--naive-prompts", type=int, default=4, help="prompts timed in the one-at-a-time loop"
    )
    parser.add_argument("--repeats", type=int, default=1, help="timed passes over the batch")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument(
        "--static-cache", choices=["auto", "on", "off"], default="auto", help="auto: on for CUDA"
    )
    parser.add_argument(
        "--tokenizer", default=None, help=f"tokenizer for {RANDOM_7B} (path, hub id or .gguf)"
    )
    parser.add_argument("--out", type=Path, default=None, help="markdown file to append the row to")
    args = parser.parse_args(argv)
    for name in ("batch_size", "new_tokens", "naive_prompts", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    args.naive_prompts = min(args.naive_prompts, args.batch_size)
    return args


def main(argv: list[str] | None = None) -> Result:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    result = run(args)
    print(HEADER)
    print(result.row())
    if args.out:
        append_row(args.out, result.row())
    return result


if __name__ == "__main__":
    main()
