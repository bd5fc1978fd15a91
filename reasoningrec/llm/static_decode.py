"""Batched decoding with a static KV cache, the one-token step compiled into a CUDA graph on GPUs.

``model.generate`` spends 20-35 ms of Python per decode step on a 7B model (the GPU waits on the
host), so batches are launch-bound. Here every decode step of a batch has the same shapes: the KV
cache is pre-allocated (``StaticCache``), the 2D attention mask spans the whole cache from the start
(future positions are hidden by causality), and the next token never leaves the GPU. On CUDA the step
is compiled with ``torch.compile(mode="reduce-overhead")``, which replays it as one CUDA graph; on CPU
(or when compilation fails) the same loop runs eagerly.

Shapes are kept few so that graphs are reused: the cache length is rounded up to ``cache_bucket``
tokens and a short final batch is padded with copies of its first row (their output is dropped).
Greedy decoding equals ``generate``'s; sampling (temperature, top-p) uses a seeded device generator.
"""

from __future__ import annotations

import logging
import weakref
from typing import Any

log = logging.getLogger(__name__)

ENGINES = ("auto", "generate", "static")
# The attention implementation the static engine switches an "sdpa" model to (see decode_attention).
DECODE_ATTENTION = "reasoningrec_sdpa"
# Host sync every this many steps to stop once every row has ended (a sync per step costs ~10%).
EOS_CHECK_EVERY = 16
MAX_CACHES = 2


def pick_engine(engine: str, device: str, quantized: bool = False) -> str:
    """``generate`` or ``static``: ``auto`` is static on CUDA for unquantized weights (bitsandbytes
    layers do not compile), else ``generate``."""
    if engine not in ENGINES:
        raise ValueError(f"unknown decode engine {engine!r} (expected one of {ENGINES})")
    if engine != "auto":
        return engine
    return "static" if str(device).startswith("cuda") and not quantized else "generate"


def round_up(n: int, multiple: int) -> int:
    """``n`` rounded up to a multiple of ``multiple`` (>= 1)."""
    multiple = max(1, multiple)
    return -(-n // multiple) * multiple


def filter_top_p(probs, top_p: float):
    """Probabilities with the tail outside the smallest set of mass >= ``top_p`` zeroed (the most
    likely token always stays), renormalised."""
    import torch

    if top_p >= 1.0:
        return probs
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    before = sorted_probs.cumsum(-1) - sorted_probs  # mass of the tokens ranked above each one
    sorted_probs = sorted_probs.masked_fill(before >= top_p, 0.0)
    kept = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    return kept / kept.sum(-1, keepdim=True)


def decode_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None, **kwargs):
    """SDPA, except for one-token decode steps: there ``softmax(q k^T) v`` as two batched matmuls over
    the KV heads, the query heads of a group stacked as rows (grouped-query attention without copying
    the cache 4x), the mask applied to the scores.

    Why: for a single query over a static cache, SDPA picks a prefill kernel (cuDNN flash with an
    explicit mask) and, under ``torch.compile``, materialises the repeated KV heads; on an H200 that
    was ~40 us per layer per step for Mistral-7B at batch 64, half the step. Two matmuls read K and V
    once each."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    plain = query.shape[2] != 1 or kwargs.get("output_attentions") or kwargs.get("softcap") is not None
    if plain or kwargs.get("position_bias") is not None or dropout:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    import torch

    batch, heads, _, dim = query.shape
    kv_heads, length = key.shape[1], key.shape[2]
    groups = heads // kv_heads
    scale = scaling if scaling is not None else dim**-0.5
    scores = torch.matmul(query.view(batch, kv_heads, groups, dim), key.transpose(-1, -2)).float() * scale
    if attention_mask is not None:
        mask = attention_mask[:, :, -1, :length]  # [batch, 1 or heads, length]
        mask = (
            mask.reshape(batch, 1, 1, length) if mask.shape[1] == 1 else mask.reshape(batch, kv_heads, groups, length)
        )
        scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask
    probs = torch.softmax(scores, dim=-1).to(value.dtype)
    out = torch.matmul(probs, value)  # [batch, kv_heads, groups, dim]
    return out.reshape(batch, heads, 1, dim).transpose(1, 2).contiguous(), None


def use_decode_attention(model) -> bool:
    """Switch an ``sdpa`` model to :func:`decode_attention` (registered once with transformers, with
    SDPA's mask builder). Other implementations (eager, flash) are left alone. Returns whether it
    switched."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = base.config
    if getattr(config, "_attn_implementation", None) == DECODE_ATTENTION:
        return True
    if getattr(config, "_attn_implementation", None) != "sdpa":
        return False
    AttentionInterface.register(DECODE_ATTENTION, decode_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(DECODE_ATTENTION, sdpa_mask)
    try:
        base.set_attn_implementation(DECODE_ATTENTION)
    except Exception as exc:  # older/newer validation rules: the config attribute is what forward reads
        log.debug("set_attn_implementation(%s) refused (%s); setting the config", DECODE_ATTENTION, exc)
        config._attn_implementation = DECODE_ATTENTION
    return config._attn_implementation == DECODE_ATTENTION


_DECODERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def decoder_for(model, engine: str = "auto", *, quantized: bool = False) -> StaticDecoder | None:
    """The model's :class:`StaticDecoder` when ``engine`` resolves to ``static`` for it, else None.

    One decoder per model, kept as long as the model lives: its caches and compiled graphs are reused
    by every later call (a new decoder per call would recompile)."""
    device = str(next(model.parameters()).device)
    quantized = quantized or bool(getattr(model, "is_quantized", False))
    if pick_engine(engine, device, quantized) != "static":
        return None
    if model not in _DECODERS:
        _DECODERS[model] = StaticDecoder(model)
    return _DECODERS[model]


class StaticDecoder:
    """Greedy or sampled decoding of left-padded batches over one loaded causal LM.

    Args:
        model: a transformers causal LM (a PEFT-wrapped one too), already on its device, in eval mode.
        compile_step: compile the decode step (CUDA graphs); ``None`` = on CUDA only.
        cache_bucket: cache lengths are rounded up to this many tokens (fewer distinct graphs).
        fast_attention: switch an SDPA model to :func:`decode_attention` (default: when compiling).
    """

    def __init__(
        self, model, *, compile_step: bool | None = None, cache_bucket: int = 256, fast_attention: bool | None = None
    ):
        self.model = model
        self.device = next(model.parameters()).device
        self.compile_step = self.device.type == "cuda" if compile_step is None else compile_step
        if self.compile_step if fast_attention is None else fast_attention:
            use_decode_attention(model)
        self.cache_bucket = cache_bucket
        self._caches: dict[tuple[int, int], Any] = {}
        self._mask = None  # the current shape's full-cache attention mask, read by the step
        self._cache = None
        self._compiled = None

    def _static_cache(self, batch: int, length: int):
        from transformers import StaticCache

        key = (batch, length)
        if key not in self._caches:
            while len(self._caches) >= MAX_CACHES:  # a 7B cache is GBs: keep the newest shapes only
                self._caches.pop(next(iter(self._caches)))
            self._caches[key] = StaticCache(config=self.model.config, max_cache_len=length)
        cache = self._caches[key]
        cache.reset()  # in place: a captured graph keeps pointing at the same tensors
        return cache

    def _shape(self, rows: int, cache_len: int) -> tuple[int, int]:
        """(batch, cache length) to decode ``rows`` rows needing ``cache_len`` positions: with a
        compiled step, the smallest existing shape that holds them (its graph is reused), else exact."""
        if self.compile_step:
            fits = [key for key in self._caches if key[0] >= rows and key[1] >= cache_len]
            if fits:
                return min(fits, key=lambda key: key[0] * key[1])
        return rows, cache_len

    def _step(self, token, position_ids, cache_position):
        logits = self.model(
            input_ids=token,
            attention_mask=self._mask,
            position_ids=position_ids,
            past_key_values=self._cache,
            cache_position=cache_position,
            use_cache=True,
        ).logits
        return logits[:, -1].float()

    def _step_fn(self):
        if not self.compile_step:
            return self._step
        if self._compiled is None:
            import torch

            self._compiled = torch.compile(self._step, mode="reduce-overhead", fullgraph=True)
        return self._compiled

    def generate(
        self,
        input_ids,
        attention_mask,
        *,
        max_new_tokens: int,
        eos_ids: set[int],
        pad_id: int,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int = 0,
        min_new_tokens: int = 0,
    ):
        """New token ids, ``[batch, <= max_new_tokens]`` on the CPU: rows that ended carry ``pad_id``
        after their EOS; decoding stops early once every row has ended (checked every
        ``EOS_CHECK_EVERY`` steps) unless ``min_new_tokens`` forbids it."""
        import torch

        with torch.inference_mode():  # the cache tensors are inference tensors
            rows, length = input_ids.shape
            batch, cache_len = self._shape(rows, round_up(length + max_new_tokens, self.cache_bucket))
            if batch > rows:  # pad with copies of row 0: same shapes, outputs dropped
                fill = batch - rows
                input_ids = torch.cat([input_ids, input_ids[:1].expand(fill, -1)])
                attention_mask = torch.cat([attention_mask, attention_mask[:1].expand(fill, -1)])
            input_ids = input_ids.to(self.device)
            attention_mask = attention_mask.to(self.device)
            self._cache = self._static_cache(batch, cache_len)
            # Positions past the prompt are visible (1): the causal mask hides the future ones.
            mask = torch.ones(batch, cache_len, dtype=attention_mask.dtype, device=self.device)
            mask[:, :length] = attention_mask
            self._mask = mask
            positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
            eos = torch.tensor(sorted(eos_ids), dtype=torch.long, device=self.device)
            generator = torch.Generator(device=self.device).manual_seed(seed) if temperature > 0 else None
            out = torch.full((batch, max_new_tokens), pad_id, dtype=torch.long, device=self.device)
            finished = torch.zeros(batch, dtype=torch.bool, device=self.device)
            step = self._step_fn()
            logits = (
                self.model(
                    input_ids=input_ids,
                    attention_mask=mask[:, :length],
                    position_ids=positions,
                    past_key_values=self._cache,
                    cache_position=torch.arange(length, device=self.device),
                    use_cache=True,
                    logits_to_keep=1,
                )
                .logits[:, -1]
                .float()
            )
            position = positions[:, -1:] + 1
            produced = max_new_tokens
            for i in range(max_new_tokens):
                token = self._next_token(logits, i < min_new_tokens, eos, temperature, top_p, generator)
                token = token.masked_fill(finished, pad_id)
                out[:, i] = token
                finished |= torch.isin(token, eos)
                if i + 1 == max_new_tokens:
                    break
                if (i + 1) % EOS_CHECK_EVERY == 0 and i + 1 >= min_new_tokens and bool(finished.all()):
                    produced = i + 1
                    break
                cache_position = torch.full((1,), length + i, dtype=torch.long, device=self.device)
                logits = self._run_step(step, token[:, None], position, cache_position)
                step = self._step_fn()
                position = position + 1
            return out[:rows, :produced].cpu()

    def _run_step(self, step, token, position, cache_position):
        """One decode step; a step that fails to compile is logged and run eagerly from then on
        (rewriting the same cache slot is harmless)."""
        try:
            return step(token, position, cache_position).clone()
        except Exception as exc:
            if step is self._step:
                raise
            log.warning("decode step does not compile (%s: %.200s); decoding eagerly", type(exc).__name__, exc)
            self.compile_step, self._compiled = False, None
            return self._step(token, position, cache_position).clone()

    @staticmethod
    def _next_token(logits, block_eos: bool, eos, temperature: float, top_p: float, generator):
        import torch

        if block_eos:
            logits = logits.index_fill(-1, eos, float("-inf"))
        if temperature <= 0:
            return logits.argmax(-1)
        probs = filter_top_p(torch.softmax(logits / temperature, dim=-1), top_p)
        return torch.multinomial(probs, 1, generator=generator).squeeze(-1)
