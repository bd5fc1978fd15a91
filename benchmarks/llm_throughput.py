"""Generated tokens/s of batched local generation versus a naive one-prompt-at-a-time loop.

Every run uses one loaded model, greedy decoding and a fixed output length (``min_new_tokens`` =
``max_new_tokens``, so EOS never ends a reply early). Engines for the batched side:

* ``generate``: the project's :class:`HFBackend` (``model.generate``); on CUDA with a static KV cache,
  which makes transformers compile the decode step.
* ``static``: the same backend with ``engine="static"`` (:mod:`reasoningrec.llm.static_decode`, the
  default on CUDA): a static KV cache and the decode step compiled into a CUDA graph
  (``torch.compile(mode="reduce-overhead")``); the next token stays on the GPU, so no step waits for
  the CPU, where ``generate`` spends 20-35 ms of Python per step (measured).

The naive baseline is ``HFBackend`` at batch 1 with the default dynamic cache (what a plain loop over
``generate`` does). Every timed shape is warmed up once first. The decode roofline fraction is

    (bytes of weights read per decode step x decode steps/s) / HBM bandwidth

The random 7B models (``llama2-7b-random``, ``mistral-7b-random``) are built directly on the device in
bf16; pass a real 32,000-token SentencePiece file (Llama-2 or Mistral-7B v0.1 ``tokenizer.model``)
with ``--tokenizer``. ``--smoke`` shrinks the architecture (vocabulary kept) for a CPU check.

Examples::

    python -m benchmarks.llm_throughput --model embedded --device cpu --batch-size 8 --new-tokens 16
    python -m benchmarks.llm_throughput --smoke --model llama2-7b-random --tokenizer tokenizer.model.v1
    python -m benchmarks.llm_throughput --model llama2-7b-random --tokenizer tokenizer.model.v1 \\
        --engines static generate --batch-size 64 --new-tokens 128 --out docs/bench.md
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
RANDOM_MISTRAL = "mistral-7b-random"
RANDOM_MODELS = (RANDOM_7B, RANDOM_MISTRAL)
ENGINES = ("generate", "static")
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
    "| model | device | dtype | engine | batch | new tokens | batched tok/s | naive tok/s | speedup "
    "| ms/step | roofline |\n"
    "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|"
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
    engine: str
    batch_size: int
    new_tokens: int
    batched_tps: float
    naive_tps: float
    step_ms: float
    roofline: float | None

    def row(self) -> str:
        roof = f"{self.roofline:.0%}" if self.roofline is not None else "n/a"
        return (
            f"| {self.model} | {self.device} | {self.dtype} | {self.engine} | {self.batch_size} | "
            f"{self.new_tokens} | {self.batched_tps:,.1f} | {self.naive_tps:,.1f} | "
            f"{self.batched_tps / self.naive_tps:.1f}x | {self.step_ms:.1f} | {roof} |"
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


def mistral_7b_config():
    """Mistral-7B-v0.1's architecture: 32 layers, hidden 4096, MLP 14336, 32 query / 8 KV heads
    (grouped-query attention: a 4x smaller KV cache than Llama-2-7B), 32000-token vocabulary. Built
    as a Llama model (same blocks; the sliding window, 4096, never triggers at these lengths)."""
    config = llama2_7b_config()
    config.intermediate_size = 14336
    config.num_key_value_heads = 8
    config.rms_norm_eps = 1e-5
    config.rope_theta = 10000.0
    return config


def smoke_config(config):
    """A tiny model of the same family and vocabulary, for CPU checks of the whole path."""
    ratio = config.num_attention_heads // config.num_key_value_heads
    config.hidden_size, config.intermediate_size, config.num_hidden_layers = 64, 128, 2
    config.num_attention_heads, config.num_key_value_heads = 4, 4 // ratio
    config.head_dim = 16
    return config


# SentencePiece piece types (sentencepiece_model.proto).
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
SPM_IMPLS = ("auto", "transformers", "sentencepiece", "protobuf")


def read_spm_proto(path: Path):
    """The parsed ``ModelProto`` of a SentencePiece BPE ``.model`` file (protobuf only: the schema
    ships with transformers, so the ``sentencepiece`` package is not needed)."""
    from transformers.convert_slow_tokenizer import import_protobuf

    proto = import_protobuf().ModelProto()
    try:
        proto.ParseFromString(Path(path).read_bytes())
    except Exception as exc:  # protobuf raises its own DecodeError
        raise ValueError(f"{path}: not a SentencePiece model file ({exc})") from exc
    if proto.trainer_spec.model_type != 2:  # 2 = BPE, the Llama/Mistral kind
        raise ValueError(f"{path}: SentencePiece model type {proto.trainer_spec.model_type}, expected BPE (2)")
    return proto


def spm_pieces(path: Path) -> list[str]:
    """The pieces of a SentencePiece BPE model, by id."""
    return [piece.piece for piece in read_spm_proto(path).pieces]


class SpmBPE:
    """SentencePiece BPE encoding from the model file's pieces and scores alone.

    The algorithm of sentencepiece's ``bpe_model.cc``: split the normalised text into characters
    (user-defined pieces stay whole), repeatedly merge the adjacent pair whose concatenation is a
    piece with the highest score (leftmost on ties), then map leftovers to byte pieces
    (``byte_fallback``) or ``<unk>``.
    """

    def __init__(self, proto):
        spec = proto.normalizer_spec
        self.add_dummy_prefix = spec.add_dummy_prefix
        self.remove_extra_whitespaces = spec.remove_extra_whitespaces
        self.escape_whitespaces = spec.escape_whitespaces
        # Llama-2 and Mistral use "identity"; an NFKC-family rule is approximated by unicodedata.
        self.nfkc = "nfkc" in spec.name.lower()
        self.byte_fallback = proto.trainer_spec.byte_fallback
        self.unk_id = proto.trainer_spec.unk_id
        self.mergeable: dict[str, tuple[int, float]] = {}
        self.known: dict[str, int] = {}
        self.byte_ids: dict[int, int] = {}
        self.user_defined: list[str] = []
        for index, piece in enumerate(proto.pieces):
            if piece.type in (NORMAL, USER_DEFINED):
                self.mergeable[piece.piece] = (index, piece.score)
            if piece.type == BYTE:
                self.byte_ids[int(piece.piece[3:5], 16)] = index
            elif piece.type != UNUSED:
                self.known.setdefault(piece.piece, index)
            if piece.type == USER_DEFINED:
                self.user_defined.append(piece.piece)
        self.user_defined.sort(key=len, reverse=True)

    def normalize(self, text: str) -> str:
        if self.nfkc:
            import unicodedata

            text = unicodedata.normalize("NFKC", text)
        if self.remove_extra_whitespaces:
            text = " ".join(text.split(" ")).strip()
            while "  " in text:
                text = text.replace("  ", " ")
        if not text:
            return ""
        if self.add_dummy_prefix:
            text = " " + text
        return text.replace(" ", "\u2581") if self.escape_whitespaces else text

    def _symbols(self, text: str) -> list[tuple[str, bool]]:
        """(symbol, frozen) per character; user-defined pieces as one frozen symbol."""
        out, i = [], 0
        while i < len(text):
            match = next((u for u in self.user_defined if text.startswith(u, i)), None)
            if match:
                out.append((match, True))
                i += len(match)
            else:
                out.append((text[i], False))
                i += 1
        return out

    def encode(self, text: str) -> list[int]:
        import heapq

        symbols = self._symbols(self.normalize(text))
        pieces = [s for s, _ in symbols]
        frozen = [f for _, f in symbols]
        nxt = list(range(1, len(pieces) + 1))
        prv = list(range(-1, len(pieces) - 1))
        heap: list[tuple[float, int, int, str]] = []

        def push(left: int, right: int) -> None:
            if left < 0 or right >= len(pieces) or frozen[left] or frozen[right]:
                return
            merged = pieces[left] + pieces[right]
            hit = self.mergeable.get(merged)
            if hit is not None:
                heapq.heappush(heap, (-hit[1], left, right, merged))

        for i in range(len(pieces) - 1):
            push(i, i + 1)
        while heap:
            _, left, right, merged = heapq.heappop(heap)
            # Stale entries: one side already merged into something else.
            if pieces[left] is None or pieces[right] is None or nxt[left] != right:
                continue
            if pieces[left] + pieces[right] != merged:
                continue
            pieces[left], pieces[right] = merged, None
            nxt[left] = nxt[right]
            if nxt[left] < len(pieces):
                prv[nxt[left]] = left
            push(prv[left], left)
            push(left, nxt[left])
        ids: list[int] = []
        for piece in pieces:
            if piece is None:
                continue
            index = self.known.get(piece)
            if index is not None:
                ids.append(index)
            elif self.byte_fallback and self.byte_ids:
                ids.extend(self.byte_ids[b] for b in piece.encode("utf-8"))
            else:
                ids.append(self.unk_id)
        return ids


class SpmTokenizer:
    """A thin tokenizer over a SentencePiece BPE file: what the benchmark needs (encode, decode,
    pad/eos/bos ids, left-padded batches, a chat template) and nothing more.

    Encoding runs through ``sentencepiece.SentencePieceProcessor`` when that package is present,
    else through :class:`SpmBPE` (same algorithm, same ids). Control pieces written in the text
    (``<s>``, ``</s>``) become their ids, the text between them is encoded piece by piece, as the
    Llama reference code does with ``sp.encode``.
    """

    def __init__(self, path: Path, impl: str = "auto"):
        import re

        proto = read_spm_proto(path)
        self.path = Path(path)
        self.bpe = SpmBPE(proto)
        self.pieces = [p.piece for p in proto.pieces]
        self.control = {p.piece: i for i, p in enumerate(proto.pieces) if p.type == CONTROL}
        self.skip_ids = {i for i, p in enumerate(proto.pieces) if p.type in (CONTROL, UNKNOWN)}
        self._byte_of = {i: b for b, i in self.bpe.byte_ids.items()}
        spec = proto.trainer_spec
        self.bos_token = self._piece(spec.bos_id)
        self.eos_token = self._piece(spec.eos_id)
        self.unk_token = self._piece(spec.unk_id)
        self._pad_token = self._piece(spec.pad_id)
        self.padding_side = "left"
        self.chat_template: str | None = None
        self._split = re.compile("(" + "|".join(map(re.escape, sorted(self.control, key=len, reverse=True))) + ")")
        self.sp = None
        if impl in ("auto", "sentencepiece"):
            try:
                import sentencepiece
            except ImportError:
                if impl == "sentencepiece":
                    raise
            else:
                self.sp = sentencepiece.SentencePieceProcessor(model_file=str(path))
        self.impl = "sentencepiece" if self.sp is not None else "protobuf"

    def _piece(self, index: int) -> str | None:
        return self.pieces[index] if 0 <= index < len(self.pieces) else None

    def __len__(self) -> int:
        return len(self.pieces)

    def __repr__(self) -> str:
        return f"SpmTokenizer({str(self.path)!r}, impl={self.impl!r}, {len(self)} pieces)"

    def convert_tokens_to_ids(self, token: str) -> int | None:
        return self.control.get(token, self.bpe.known.get(token))

    @property
    def pad_token(self) -> str | None:
        return self._pad_token

    @pad_token.setter
    def pad_token(self, token: str | None) -> None:
        self._pad_token = token

    @property
    def pad_token_id(self) -> int | None:
        return None if self._pad_token is None else self.convert_tokens_to_ids(self._pad_token)

    @property
    def eos_token_id(self) -> int | None:
        return self.convert_tokens_to_ids(self.eos_token) if self.eos_token else None

    @property
    def bos_token_id(self) -> int | None:
        return self.convert_tokens_to_ids(self.bos_token) if self.bos_token else None

    def encode_segment(self, text: str, impl: str | None = None) -> list[int]:
        """Ids of text holding no control piece."""
        if (impl or self.impl) == "sentencepiece":
            return list(self.sp.encode(text))
        return self.bpe.encode(text)

    def encode(self, text: str, add_special_tokens: bool = True, impl: str | None = None) -> list[int]:
        ids = [self.bos_token_id] if add_special_tokens and self.bos_token_id is not None else []
        for part in self._split.split(text) if self.control else [text]:
            if part in self.control:
                ids.append(self.control[part])
            elif part:
                ids.extend(self.encode_segment(part, impl))
        return ids

    def __call__(self, text, add_special_tokens: bool = True, padding: bool = False, return_tensors=None):
        from transformers import BatchEncoding

        if isinstance(text, str):
            ids = self.encode(text, add_special_tokens)
            return BatchEncoding({"input_ids": ids, "attention_mask": [1] * len(ids)}, tensor_type=return_tensors)
        rows = [self.encode(t, add_special_tokens) for t in text]
        if padding:
            return self.pad({"input_ids": rows}, padding=True, return_tensors=return_tensors)
        return BatchEncoding(
            {"input_ids": rows, "attention_mask": [[1] * len(r) for r in rows]}, tensor_type=return_tensors
        )

    def pad(self, encoded: dict, padding: bool = True, return_tensors=None):
        """Rows padded to the longest with ``pad_token_id`` on ``padding_side``, with their mask."""
        from transformers import BatchEncoding

        rows = [list(r) for r in encoded["input_ids"]]
        width = max(map(len, rows), default=0) if padding else 0
        if padding and self.pad_token_id is None and any(len(r) < width for r in rows):
            raise ValueError(f"{self.path}: no pad token set; set tokenizer.pad_token first")
        ids, mask = [], []
        for row in rows:
            fill = width - len(row) if padding else 0
            pad, ones = [self.pad_token_id] * fill, [1] * len(row)
            left = self.padding_side == "left"
            ids.append(pad + row if left else row + pad)
            mask.append([0] * fill + ones if left else ones + [0] * fill)
        return BatchEncoding({"input_ids": ids, "attention_mask": mask}, tensor_type=return_tensors)

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        """Text of ``ids``: byte pieces joined as UTF-8, ``\u2581`` as a space, the dummy prefix dropped."""
        if hasattr(ids, "tolist"):
            ids = ids.tolist()
        out, pending = [], bytearray()
        for index in ids:
            if skip_special_tokens and index in self.skip_ids:
                continue
            if index in self._byte_of:
                pending.append(self._byte_of[index])
                continue
            if pending:
                out.append(pending.decode("utf-8", errors="replace"))
                pending = bytearray()
            if 0 <= index < len(self.pieces):  # like the tokenizers library: unknown ids decode to nothing
                out.append(self.pieces[index])
        if pending:
            out.append(pending.decode("utf-8", errors="replace"))
        text = "".join(out).replace("\u2581", " ")
        return text[1:] if self.bpe.add_dummy_prefix and text.startswith(" ") else text

    def batch_decode(self, rows, skip_special_tokens: bool = False) -> list[str]:
        return [self.decode(r, skip_special_tokens) for r in rows]

    def apply_chat_template(self, messages, tokenize: bool = False, add_generation_prompt: bool = False, **_):
        """The chat template rendered with jinja2, as transformers renders it."""
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        if self.chat_template is None:
            raise ValueError(f"{self.path}: no chat template set")
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        text = env.from_string(self.chat_template).render(
            messages=list(messages),
            add_generation_prompt=add_generation_prompt,
            bos_token=self.bos_token or "",
            eos_token=self.eos_token or "",
        )
        return self.encode(text, add_special_tokens=False) if tokenize else text

    def mismatches(self, texts) -> int:
        """How many of ``texts`` the sentencepiece package and :class:`SpmBPE` encode differently
        (0 when the package is absent: nothing to compare)."""
        if self.sp is None:
            return 0
        return sum(self.encode(t, impl="sentencepiece") != self.encode(t, impl="protobuf") for t in texts)


def load_spm_tokenizer(path: Path):
    """A transformers Llama tokenizer from a SentencePiece ``.model`` file (Llama-2's
    ``tokenizer.model``, mistral-common's ``tokenizer.model.v1``), built from its pieces and merges
    the way transformers' converter builds it. ``generate_merges`` takes the piece scores as an
    optional argument in some transformers 5.x releases and a required one in others (5.17): always
    pass them, by position."""
    from transformers import LlamaTokenizer
    from transformers.convert_slow_tokenizer import generate_merges

    proto = read_spm_proto(path)
    vocab = {piece.piece: index for index, piece in enumerate(proto.pieces)}
    scores = {piece.piece: piece.score for piece in proto.pieces}
    return LlamaTokenizer(vocab=vocab, merges=generate_merges(vocab, scores))


def load_spm(path: Path, impl: str = "auto"):
    """A tokenizer for a SentencePiece file: transformers' when it loads (``auto``), else
    :class:`SpmTokenizer` (sentencepiece package, else the protobuf reader)."""
    if impl in ("auto", "transformers"):
        try:
            return load_spm_tokenizer(path)
        except Exception as exc:
            if impl == "transformers":
                raise
            log.warning("%s: transformers cannot build it (%s); using SpmTokenizer", path, exc)
    tok = SpmTokenizer(path, "auto" if impl == "auto" else impl)
    log.info("tokenizer: %r", tok)
    return tok


def load_tokenizer(tokenizer: str | None, spm_impl: str = "auto"):
    """The tokenizer of a random 7B: a SentencePiece file, a .gguf, a hub id / folder, else the offline
    Llama tokenizers, else (with a warning) the tiny test tokenizer."""
    from transformers import AutoTokenizer

    tok = None
    for candidate in ([tokenizer] if tokenizer else []) + list(LLAMA_TOKENIZERS):
        path = Path(candidate)
        try:
            if path.is_file() and ".model" in path.name:
                tok = load_spm(path, spm_impl)
            elif path.suffix == ".gguf":
                tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
            else:
                tok = AutoTokenizer.from_pretrained(candidate, local_files_only=True)
            log.info("tokenizer: %s (%d tokens)", candidate, len(tok))
            break
        except Exception as exc:  # not in the offline cache: try the next one
            if candidate == tokenizer:
                raise ValueError(f"--tokenizer {tokenizer}: cannot load it ({exc})") from exc
            log.debug("tokenizer %s unavailable: %s", candidate, exc)
    if tok is None:
        from reasoningrec.testing import build_tiny_tokenizer

        log.warning("no Llama tokenizer offline: using the tiny test tokenizer (ids < 32000, shapes unchanged)")
        tok = build_tiny_tokenizer()
    if tok.chat_template is None:
        tok.chat_template = LLAMA2_TEMPLATE
    if tok.pad_token_id is None:
        tok.pad_token = tok.unk_token or tok.eos_token
    return tok


def random_7b(name: str, device: str, tokenizer: str | None, smoke: bool = False, spm_impl: str = "auto"):
    """A correctly shaped 7B (random bf16 weights, initialised on ``device``) and its tokenizer."""
    import torch
    from transformers import LlamaForCausalLM

    config = mistral_7b_config() if name == RANDOM_MISTRAL else llama2_7b_config()
    if smoke:
        config = smoke_config(config)
    start = time.perf_counter()
    with torch.device(device):  # never materialise 13 GB on the CPU first
        model = LlamaForCausalLM._from_config(config, dtype=torch.bfloat16)
    model.eval()
    log.info("built %s on %s in %.1f s", name, device, time.perf_counter() - start)
    tok = load_tokenizer(tokenizer, spm_impl)
    if isinstance(tok, SpmTokenizer) and tok.sp is not None:
        texts = [tok.apply_chat_template(p, add_generation_prompt=True) for p in make_prompts(16)]
        bad = tok.mismatches(texts)
        if bad:
            raise RuntimeError(f"{tokenizer}: sentencepiece and the protobuf reader disagree on {bad}/16 prompts")
        log.info("tokenizer check: sentencepiece and the protobuf reader agree on 16 prompts")
    if len(tok) > config.vocab_size:
        raise ValueError(f"tokenizer has {len(tok)} tokens, more than the model's {config.vocab_size}")
    model.generation_config.pad_token_id = tok.pad_token_id
    return model, tok


def load(args: argparse.Namespace, device: str):
    if args.model in RANDOM_MODELS:
        return random_7b(args.model, device, args.tokenizer, smoke=args.smoke, spm_impl=args.tokenizer_impl)
    from reasoningrec import models

    precision = models.inference_precision(args.dtype, "none", device)
    tok = models.load_tokenizer(args.model, padding_side="left")
    model = models.load_causal_lm(args.model, precision, device=device)
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tok.pad_token_id
    return model, tok


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(backend, batches, settings, device: str) -> tuple[int, float]:
    """Completion tokens generated and seconds taken over ``batches``."""
    _sync(device)
    start = time.perf_counter()
    tokens = 0
    for batch in batches:
        tokens += sum(g.completion_tokens for g in backend.generate(batch, settings))
    _sync(device)
    return tokens, time.perf_counter() - start


def run(args: argparse.Namespace) -> list[Result]:
    import torch

    from reasoningrec.llm.hf import HFBackend

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model, tok = load(args, device)
    static = args.static_cache == "on" or (args.static_cache == "auto" and device.startswith("cuda"))
    settings = GenerationSettings(temperature=0, max_new_tokens=args.new_tokens)
    fixed = {"min_new_tokens": args.new_tokens}

    # Naive: one prompt per generate call, the default dynamic cache (no compilation).
    naive = HFBackend.from_loaded(model, tok, args.model, batch_size=1, generate_kwargs=fixed, engine="generate")
    singles = [[p] for p in make_prompts(args.naive_prompts)]
    for _ in range(min(args.warmup, 1)):
        naive.generate(singles[0], settings)
    n_tokens, n_seconds = timed(naive, singles, settings, device)
    naive_tps = n_tokens / n_seconds
    log.info("naive: %d tokens in %.2f s = %.1f tok/s", n_tokens, n_seconds, naive_tps)

    hbm = args.hbm_gbps or default_hbm_gbps(device)
    weight_bytes = weight_bytes_per_step(model)
    name = torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else "cpu"
    dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
    results = []
    for engine in args.engines:
        for batch_size in args.batch_size:
            try:
                result = measure_engine(args, engine, batch_size, model, tok, device, static, settings, naive_tps)
            except Exception:  # one engine failing (e.g. compilation) must not lose the others' rows
                if not args.keep_going:
                    raise
                log.exception("%s at batch %d failed; continuing", engine, batch_size)
                continue
            steps_per_s = 1000 / result["step_ms"]
            roofline = weight_bytes * steps_per_s / (hbm * 1e9) if hbm else None
            result = Result(**{**result, "device": name, "dtype": dtype, "roofline": roofline})
            log.info(result.row())
            results.append(result)
    return results


def measure_engine(args, engine, batch_size, model, tok, device, static, settings, naive_tps) -> dict:
    """Fields of one :class:`Result` (device, dtype and roofline filled in by the caller)."""
    from reasoningrec.llm.hf import HFBackend

    prompts = make_prompts(batch_size)
    start = time.perf_counter()
    fixed = {"min_new_tokens": args.new_tokens}
    if engine == "generate" and static:
        fixed["cache_implementation"] = "static"
    batched = HFBackend.from_loaded(model, tok, args.model, batch_size=batch_size, generate_kwargs=fixed, engine=engine)
    # Compile / record graphs / allocate at the exact shapes that are timed (CUDA graphs: 2 passes).
    for _ in range(max(args.warmup, 2 if engine == "static" and device.startswith("cuda") else 0)):
        batched.generate(prompts, settings)
    b_tokens, b_seconds = timed(batched, [prompts] * args.repeats, settings, device)
    if args.profile:
        profile_step(batched, prompts, settings, device, args.profile)
    expected = batch_size * args.new_tokens * args.repeats
    if b_tokens != expected:
        raise RuntimeError(f"{engine} run generated {b_tokens} tokens, expected {expected}")
    log.info("%s batch %d: %.1f s with warm-up", engine, batch_size, time.perf_counter() - start)
    return {
        "model": args.model + (" (smoke)" if args.smoke else ""),
        "device": "",
        "dtype": "",
        "engine": engine + ("+static cache" if engine == "generate" and static else ""),
        "batch_size": batch_size,
        "new_tokens": args.new_tokens,
        "batched_tps": b_tokens / b_seconds,
        "naive_tps": naive_tps,
        "step_ms": 1000 * b_seconds / (args.new_tokens * args.repeats),
        "roofline": None,
    }


def profile_step(backend, prompts, settings, device: str, path: Path) -> None:
    """One more timed pass under ``torch.profiler``: the kernels by total GPU time, written to
    ``path`` (where a decode step's time goes: GEMMs, attention, the rest)."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.startswith("cuda") else [])
    with profile(activities=activities) as prof:
        backend.generate(prompts, settings)
        _sync(device)
    sort = "cuda_time_total" if device.startswith("cuda") else "cpu_time_total"
    table = prof.key_averages().table(sort_by=sort, row_limit=25, max_name_column_width=70)
    with Path(path).open("a", encoding="utf-8") as handle:
        handle.write(f"# {backend!r}, batch {len(prompts)}, {settings.max_new_tokens} new tokens\n{table}\n")


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
        "--model", default="embedded", help=f"hub id, local folder, 'embedded', {' or '.join(RANDOM_MODELS)}"
    )
    parser.add_argument("--batch-size", type=int, nargs="+", default=[8], help="one or more batch sizes")
    parser.add_argument("--engines", nargs="+", choices=ENGINES, default=["generate"])
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--device", default=None, help="cuda, cuda:1, cpu (default: cuda when present)")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16"])
    parser.add_argument("--hbm-gbps", type=float, default=None, help="HBM GB/s (default: 3350 H100 SXM, 4800 H200)")
    parser.add_argument("--naive-prompts", type=int, default=4, help="prompts timed in the one-at-a-time loop")
    parser.add_argument("--repeats", type=int, default=1, help="timed passes over the batch")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument(
        "--static-cache",
        choices=["auto", "on", "off"],
        default="auto",
        help="generate engine; auto: on for CUDA",
    )
    parser.add_argument(
        "--tokenizer",
        default=None,
        help="tokenizer of a random 7B: SentencePiece .model file, .gguf or hub id",
    )
    parser.add_argument(
        "--tokenizer-impl",
        choices=SPM_IMPLS,
        default="auto",
        help="SentencePiece files: transformers' tokenizer, else (auto) or only the thin SpmTokenizer "
        "over the sentencepiece package or the protobuf reader",
    )
    parser.add_argument(
        "--profile", type=Path, default=None, help="append a torch.profiler kernel table per engine/batch here"
    )
    parser.add_argument("--smoke", action="store_true", help="tiny architecture (random models only)")
    parser.add_argument("--out", type=Path, default=None, help="markdown file to append the rows to")
    parser.add_argument(
        "--keep-going", action="store_true", help="log a failing engine/batch and go on with the others"
    )
    args = parser.parse_args(argv)
    for name in ("new_tokens", "naive_prompts", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if min(args.batch_size) < 1:
        parser.error("--batch-size must be >= 1")
    if args.smoke and args.model not in RANDOM_MODELS:
        parser.error(f"--smoke needs --model {' or '.join(RANDOM_MODELS)}")
    args.naive_prompts = min(args.naive_prompts, max(args.batch_size))
    return args


def main(argv: list[str] | None = None) -> list[Result]:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    results = run(args)
    print(HEADER)
    for result in results:
        print(result.row())
        if args.out:
            append_row(args.out, result.row())
    return results


if __name__ == "__main__":
    main()
