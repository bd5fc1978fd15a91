"""Local Hugging Face chat backend: any hub id or local folder, batched, left-padded generation.

Prompts go through the tokenizer's chat template, are sorted by length so each batch pads little, and
the replies come back in input order. Models load through :mod:`reasoningrec.models`: on CUDA the
weights are bf16, or 4-bit NF4 / 8-bit with bitsandbytes per ``LLMConfig.quantization``; on CPU they
are fp32 (bf16 when asked). :class:`EmbeddedBackend` is the same backend on the embedded SmolLM2.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from reasoningrec.llm.base import Generation, GenerationSettings, Message, ReplySink, check_batch
from reasoningrec.progress import progress as progress_bar

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- pure helpers (no torch needed)


def length_order(lengths: Sequence[int]) -> list[int]:
    """Indices that visit prompts from shortest to longest (stable for equal lengths)."""
    return sorted(range(len(lengths)), key=lambda i: lengths[i])


def sampling_kwargs(settings: GenerationSettings) -> dict[str, Any]:
    """``generate`` keyword arguments for ``settings``: sampling when temperature > 0, else greedy."""
    if settings.temperature > 0:
        return {
            "do_sample": True,
            "temperature": settings.temperature,
            "top_p": settings.top_p,
            "max_new_tokens": settings.max_new_tokens,
        }
    return {"do_sample": False, "max_new_tokens": settings.max_new_tokens}


def split_completion(new_ids: Sequence[int], eos_ids: set[int], max_new_tokens: int) -> tuple[list[int], int, str]:
    """Cut one generated id row at its first EOS.

    Returns the reply ids (without EOS and the padding after it), the completion token count (EOS
    included, as the OpenAI API counts it) and the finish reason: "stop" at an EOS, "length" when
    ``max_new_tokens`` ran out first.
    """
    ids = list(new_ids)
    for position, token in enumerate(ids):
        if token in eos_ids:
            return ids[:position], position + 1, "stop"
    return ids, len(ids), "length" if len(ids) >= max_new_tokens else "stop"


def eos_token_ids(tokenizer, generation_config) -> set[int]:
    """Every id that ends a reply: the model's generation EOS ids plus the tokenizer's EOS."""
    ids: set[int] = set()
    configured = getattr(generation_config, "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif configured:
        ids.update(int(i) for i in configured)
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    return ids


# ---------------------------------------------------------------- backend


class HFBackend:
    """Batched chat generation with a local transformers causal LM.

    Args:
        model: hub id or local folder.
        model_id: the name recorded in the cache key (default: ``model``).
        quantization: ``none`` | ``nf4`` | ``int8`` (CUDA only; ignored with a warning on CPU).
        dtype: ``auto`` | ``float32`` | ``bfloat16``.
        batch_size: prompts per ``generate`` call.
        device: ``cuda``, ``cuda:1``, ``cpu``...; default CUDA when present.
        generate_kwargs: extra ``model.generate`` arguments (e.g. ``cache_implementation="static"``,
            ``min_new_tokens`` for fixed-length benchmarks; the static engine honours
            ``min_new_tokens`` only).
        engine: ``auto`` | ``generate`` | ``static`` (:mod:`reasoningrec.llm.static_decode`: static
            KV cache, decode step as a CUDA graph); ``auto`` = static on CUDA without quantization.
    """

    name = "hf"

    def __init__(
        self,
        model: str,
        *,
        model_id: str | None = None,
        quantization: str = "none",
        dtype: str = "auto",
        batch_size: int = 8,
        device: str | None = None,
        generate_kwargs: dict[str, Any] | None = None,
        engine: str = "auto",
    ):
        from reasoningrec.llm.static_decode import ENGINES

        if engine not in ENGINES:
            raise ValueError(f"unknown decode engine {engine!r} (expected one of {ENGINES})")
        self.engine = engine
        self.model_path = model
        self.model_id = model_id or model
        self.quantization = quantization
        self.dtype = dtype
        self.batch_size = max(1, batch_size)
        self.device = device
        self.generate_kwargs = dict(generate_kwargs or {})
        self._loaded: tuple[Any, Any, str] | None = None

    @classmethod
    def from_loaded(cls, model, tokenizer, model_id: str, *, batch_size: int = 8, **kwargs) -> HFBackend:
        """A backend around an already loaded model and tokenizer (shared between backends)."""
        backend = cls(model_id, model_id=model_id, batch_size=batch_size, **kwargs)
        tokenizer.padding_side = "left"
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        backend._loaded = (model, tokenizer, str(model.device))
        return backend

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(model_id={self.model_id!r}, batch_size={self.batch_size}, engine={self.engine!r})"
        )

    def load(self) -> tuple[Any, Any, str]:
        """Load the model on first use (heavy: seconds to minutes)."""
        if self._loaded is None:
            from reasoningrec import models
            from reasoningrec.chat import require_chat_template

            path = models.resolve_model(self.model_path)
            device = self.device or models.default_device()
            precision = models.inference_precision(self.dtype, self.quantization, device)
            log.info("loading %s (%s on %s)", path, precision, device)
            tokenizer = models.load_tokenizer(path, padding_side="left")
            require_chat_template(tokenizer)
            model = models.load_causal_lm(path, precision, device=device)
            if model.generation_config.pad_token_id is None:
                model.generation_config.pad_token_id = tokenizer.pad_token_id
            self._loaded = (model, tokenizer, device)
        return self._loaded

    def static_decoder(self):
        """The model's :class:`StaticDecoder` when this backend's engine resolves to ``static``, else None."""
        from reasoningrec.llm.static_decode import decoder_for

        model, _, _ = self.load()
        return decoder_for(model, self.engine, quantized=self.quantization != "none")

    def prompt_texts(self, batch: Sequence[Sequence[Message]]) -> list[str]:
        """Each conversation rendered with the chat template, ending with the assistant turn opener."""
        _, tokenizer, _ = self.load()
        return [tokenizer.apply_chat_template(list(conv), tokenize=False, add_generation_prompt=True) for conv in batch]

    def generate(
        self,
        batch: list[list[Message]],
        settings: GenerationSettings,
        progress: str | None = None,
        on_reply: ReplySink | None = None,
    ) -> list[Generation]:
        """Replies in input order; each micro-batch of ``batch_size`` goes to ``on_reply`` when done."""
        import torch

        check_batch(batch)
        if not batch:
            return []
        model, tokenizer, device = self.load()
        # Templates already hold the special tokens they need (e.g. BOS): do not add them twice.
        encoded = [tokenizer(text, add_special_tokens=False)["input_ids"] for text in self.prompt_texts(batch)]
        decoder = self.static_decoder()
        order = length_order([len(ids) for ids in encoded])
        if decoder is not None:
            order.reverse()  # longest first: later batches fit the first one's cache and graph
        eos_ids = eos_token_ids(tokenizer, model.generation_config)
        kwargs = {**sampling_kwargs(settings), "pad_token_id": tokenizer.pad_token_id, **self.generate_kwargs}
        torch.manual_seed(settings.seed)

        results: list[Generation | None] = [None] * len(batch)
        with progress_bar(len(order), progress, "prompts") as bar:
            for start in range(0, len(order), self.batch_size):
                part = order[start : start + self.batch_size]
                inputs = tokenizer.pad({"input_ids": [encoded[i] for i in part]}, padding=True, return_tensors="pt").to(
                    device
                )
                if decoder is not None:
                    new_tokens = decoder.generate(
                        inputs["input_ids"],
                        inputs["attention_mask"],
                        max_new_tokens=settings.max_new_tokens,
                        eos_ids=eos_ids,
                        pad_id=tokenizer.pad_token_id,
                        temperature=settings.temperature,
                        top_p=settings.top_p,
                        seed=settings.seed,
                        min_new_tokens=int(self.generate_kwargs.get("min_new_tokens", 0)),
                    ).tolist()
                else:
                    with torch.inference_mode():
                        output = model.generate(**inputs, **kwargs)
                    new_tokens = output[:, inputs["input_ids"].shape[1] :].tolist()
                for i, row in zip(part, new_tokens, strict=True):
                    ids, count, reason = split_completion(row, eos_ids, settings.max_new_tokens)
                    text = tokenizer.decode(ids, skip_special_tokens=True).strip()
                    results[i] = Generation(text, len(encoded[i]), count, reason)
                if on_reply is not None:
                    on_reply([(i, results[i]) for i in part])
                bar.update(len(part))
        return [g for g in results if g is not None]


class EmbeddedBackend(HFBackend):
    """The HF backend on the embedded SmolLM2-135M-Instruct folder (converted on first use)."""

    name = "embedded"

    def __init__(self, **kwargs):
        from reasoningrec.llm.embedded import MODEL_ID

        super().__init__("embedded", model_id=MODEL_ID, **kwargs)
