"""P(Yes) in one forward pass, explanation generation, and adapter loading.

The prediction is the first thing a fine-tuned model writes (``Prediction: Yes|No``), so its
probability is read straight from the next-token distribution after the prompt plus the assistant
prefix ``Prediction:``; nothing is generated and no text is parsed for AUC. The paper's recipe
(generate 256 tokens, then look for a Yes/No token) gives the same number at a fraction of the speed
(see ``benchmarks/scoring_speed.py``).

Conventions every caller relies on:

* ``prompts`` are *rendered* chat prompts, ending with the generation prompt (the ``prompt`` column
  that :mod:`reasoningrec.records` renders and TRL trains on). :func:`score_prompts` appends
  :data:`ANSWER_PREFIX` itself; :func:`generate_explanations` does not (the model writes it).
* Tokenisation is ``tokenizer(text)`` with the tokenizer's default special tokens, exactly as TRL
  tokenises a prompt/completion record, so train and score see the same ids.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reasoningrec.errors import ConfigError, ReasoningRecError
from reasoningrec.records import render_chat

log = logging.getLogger(__name__)

ANSWER_PREFIX = "Prediction:"
ADAPTER_META = "reasoningrec.json"
_PREDICTION_RE = re.compile(r"Prediction\s*:\s*\**\s*(yes|no)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Explanation:
    """One generated completion: the raw text, the parsed label (1/0, None = parse failure), the reasoning."""

    text: str
    label: int | None
    reasoning: str

    @property
    def parsed(self) -> bool:
        return self.label is not None


# ---------------------------------------------------------------------------------------------
# Answer tokens
# ---------------------------------------------------------------------------------------------


def answer_token_ids(tokenizer) -> tuple[int, int]:
    """Ids of the answer tokens that follow ``Prediction:`` in a rendered assistant turn: (yes, no).

    Resolved by encoding the rendered ``Prediction: Yes`` / ``Prediction: No`` continuations and taking
    the first token where they differ (for SmolLM2 that is " Yes"/" No" with the leading space, not the
    bare "Yes"). Raises :class:`ConfigError` when either answer is not one whole token, when both are
    the same token, or when the prefix does not end on a token boundary (the scorer would then read
    the wrong position).
    """
    base = render_chat(tokenizer, "Will the user like the target item?")
    prefix_ids = _encode(tokenizer, base + ANSWER_PREFIX)
    yes_ids = _encode(tokenizer, f"{base}{ANSWER_PREFIX} Yes\n")
    no_ids = _encode(tokenizer, f"{base}{ANSWER_PREFIX} No\n")
    name = getattr(tokenizer, "name_or_path", type(tokenizer).__name__)
    at = _common_prefix(yes_ids, no_ids)
    if at >= min(len(yes_ids), len(no_ids)):
        raise ConfigError(f"tokenizer {name}: 'Prediction: Yes' and 'Prediction: No' encode alike")
    yes_id, no_id = yes_ids[at], no_ids[at]
    for word, token in (("Yes", yes_id), ("No", no_id)):
        if tokenizer.decode([token]).strip() != word:
            raise ConfigError(
                f"tokenizer {name}: the answer after {ANSWER_PREFIX!r} must be one token, but {word!r} "
                f"starts with {tokenizer.decode([token])!r} (id {token})"
            )
    if yes_ids[:at] != prefix_ids:
        raise ConfigError(
            f"tokenizer {name}: {ANSWER_PREFIX!r} does not end on a token boundary before the answer "
            f"({len(prefix_ids)} prefix tokens vs {at} shared), so P(Yes) cannot be read at one position"
        )
    return int(yes_id), int(no_id)


# ---------------------------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------------------------


def score_prompts(
    model, tokenizer, prompts: list[str], batch_size: int = 8, *, answer_ids: tuple[int, int] | None = None
) -> np.ndarray:
    """P(Yes) for each rendered prompt: softmax over the (Yes, No) logits after ``prompt + "Prediction:"``.

    One forward pass per batch. Prompts are sorted by length (longest first, so an out-of-memory shows
    up on the first batch), left-padded only to their batch's longest, and the model computes logits
    for the last position only (``logits_to_keep=1``). Position ids follow the attention mask so a
    padded row scores exactly like the same prompt alone. Returns float64 in the input order.
    The model's train/eval mode is restored afterwards (the trainer calls this between epochs).
    """
    import torch

    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    yes_id, no_id = answer_ids or answer_token_ids(tokenizer)
    encoded = [_encode(tokenizer, prompt + ANSWER_PREFIX) for prompt in prompts]
    scores = np.empty(len(prompts), dtype=np.float64)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for rows in _length_batches(encoded, batch_size):
                ids, mask = _left_pad([encoded[i] for i in rows], _pad_id(tokenizer), _device(model))
                logits = model(
                    input_ids=ids,
                    attention_mask=mask,
                    position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
                    logits_to_keep=1,
                    use_cache=False,
                ).logits[:, -1, :]
                pair = logits[:, [yes_id, no_id]].float()
                scores[rows] = torch.softmax(pair, dim=-1)[:, 0].cpu().double().numpy()
    finally:
        model.train(was_training)
    return scores


def generate_explanations(
    model, tokenizer, prompts: list[str], max_new_tokens: int = 256, batch_size: int = 8,
    engine: str = "auto",
) -> list[Explanation]:
    """Greedy completions (``Prediction: ...`` + reasoning) for rendered prompts, batched by length.

    ``engine``: ``generate`` (``model.generate``), ``static`` (static KV cache, the decode step as a
    CUDA graph on GPUs: :mod:`reasoningrec.llm.static_decode`) or ``auto`` (static on CUDA for
    unquantized weights). Both are greedy and give the same tokens.

    Parse failures (no ``Prediction: Yes|No`` in the text) come back with ``label=None`` and are
    counted in the log; :func:`reasoningrec.metrics.parse_failure_rate` turns them into the metric.
    """
    import torch

    from reasoningrec.llm.hf import eos_token_ids
    from reasoningrec.llm.static_decode import decoder_for

    encoded = [_encode(tokenizer, prompt) for prompt in prompts]
    texts: list[str] = [""] * len(prompts)
    pad_id = _pad_id(tokenizer)
    device = _device(model)
    decoder = decoder_for(model, engine)
    eos_ids = eos_token_ids(tokenizer, model.generation_config)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for rows in _length_batches(encoded, batch_size):
                ids, mask = _left_pad([encoded[i] for i in rows], pad_id, device)
                if decoder is not None:
                    new = decoder.generate(
                        ids, mask, max_new_tokens=max_new_tokens, pad_id=pad_id,
                        eos_ids=eos_ids,
                    )
                else:
                    new = model.generate(
                        input_ids=ids,
                        attention_mask=mask,
                        max_new_tokens=max_new_tokens,
                        do_sample=False,
                        pad_token_id=pad_id,
                    )[:, ids.shape[1] :]
                for row, seq in zip(rows, new, strict=True):
                    texts[row] = tokenizer.decode(seq, skip_special_tokens=True).strip()
    finally:
        model.train(was_training)
    explanations = [Explanation(text, *parse_completion(text)) for text in texts]
    failures = sum(not e.parsed for e in explanations)
    if failures:
        log.warning("explanations: %d of %d completions have no 'Prediction: Yes|No'", failures, len(texts))
    return explanations


def parse_completion(text: str) -> tuple[int | None, str]:
    """Split a completion into (label, reasoning): label 1 for Yes, 0 for No, None when absent.

    The first ``Prediction: Yes|No`` (any case, optional markdown bold) counts; the reasoning is the
    text after it, or the whole text when there is no prediction.
    """
    match = _PREDICTION_RE.search(text)
    if match is None:
        return None, text.strip()
    return int(match.group(1).lower() == "yes"), text[match.end() :].strip()


def predict_records(
    model,
    tokenizer,
    records,
    *,
    explain_limit: int | None = 0,
    max_new_tokens: int = 256,
    batch_size: int = 8,
):
    """Rows of ``predictions.parquet`` for records (``user_id``, ``split``, ``label``, ``prompt_text``,
    optional ``reference``): P(Yes) for every record; a greedy explanation for the first
    ``explain_limit`` records (None = all, 0 = none). Prompts are re-rendered with ``tokenizer``.
    Columns: user_id, split, label, p_yes, explanation, reference, parsed_label."""
    import pandas as pd

    prompts = [render_chat(tokenizer, text) for text in records["prompt_text"]]
    out = pd.DataFrame(
        {
            "user_id": records["user_id"].astype(str).to_numpy(),
            "split": records["split"].to_numpy(),
            "label": records["label"].astype("int8").to_numpy(),
            "p_yes": score_prompts(model, tokenizer, prompts, batch_size),
        }
    )
    n_explain = len(prompts) if explain_limit is None else min(explain_limit, len(prompts))
    explanations = generate_explanations(model, tokenizer, prompts[:n_explain], max_new_tokens, batch_size)
    pad = [None] * (len(prompts) - n_explain)
    out["explanation"] = pd.Series([e.text for e in explanations] + pad, dtype="object")
    out["parsed_label"] = pd.Series([e.label for e in explanations] + pad, dtype="Int8")
    reference = records["reference"] if "reference" in records else pd.Series([None] * len(records))
    out["reference"] = pd.Series(reference.to_numpy(), dtype="object")
    return out


# ---------------------------------------------------------------------------------------------
# Adapters
# ---------------------------------------------------------------------------------------------


def default_dtype():
    """bfloat16 on a CUDA device that supports it, else float32 (CPU kernels are fastest in fp32)."""
    import torch

    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def resolve_base_model(name_or_path: str) -> str:
    """A local folder as is; anything else ("embedded", a hub id) through the LLM package's resolver."""
    if Path(name_or_path).is_dir():
        return str(name_or_path)
    from reasoningrec.llm.embedded import resolve_model

    return resolve_model(name_or_path)


def load_adapter(adapter_dir: str | Path, *, device: str | None = None, dtype=None) -> tuple[Any, Any, dict]:
    """Load a trained LoRA adapter for scoring/serving: (PeftModel in eval mode, tokenizer, metadata).

    ``adapter_dir`` holds the PEFT files, the tokenizer, and ``reasoningrec.json`` (written by
    :func:`reasoningrec.training.train_adapter`); its ``base_model`` ("embedded", a hub id or a path)
    is resolved again here, so an adapter moves between machines without its base model. ``dtype``
    (a torch dtype) overrides the default: bf16 on a CUDA device that supports it, fp32 elsewhere.
    """
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from reasoningrec.io import read_json

    adapter_dir = Path(adapter_dir)
    meta_path = adapter_dir / ADAPTER_META
    if not meta_path.is_file():
        raise ReasoningRecError(f"{meta_path}: adapter metadata not found (is this a trained adapter folder?)")
    meta = read_json(meta_path)
    if "base_model" not in meta:
        raise ReasoningRecError(f"{meta_path}: field 'base_model' missing")
    base = resolve_base_model(meta["base_model"])
    has_tokenizer = (adapter_dir / "tokenizer_config.json").is_file()
    tokenizer = AutoTokenizer.from_pretrained(adapter_dir if has_tokenizer else base)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if dtype is None:
        dtype = default_dtype() if device != "cpu" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype)
    model = PeftModel.from_pretrained(model, adapter_dir).to(device)
    model.eval()
    if "answer_token_ids" in meta and tuple(meta["answer_token_ids"]) != answer_token_ids(tokenizer):
        raise ReasoningRecError(
            f"{meta_path}: answer_token_ids {meta['answer_token_ids']} differ from the tokenizer's "
            f"{answer_token_ids(tokenizer)}"
        )
    return model, tokenizer, meta


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def _encode(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text)["input_ids"])


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _pad_id(tokenizer) -> int:
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return int(pad if pad is not None else 0)


def _device(model):
    return next(model.parameters()).device


def _length_batches(encoded: list[list[int]], batch_size: int) -> list[np.ndarray]:
    order = np.argsort([-len(ids) for ids in encoded], kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def _left_pad(seqs: list[list[int]], pad_id: int, device):
    import torch

    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, seq in enumerate(seqs):
        ids[row, width - len(seq) :] = torch.tensor(seq, dtype=torch.long)
        mask[row, width - len(seq) :] = 1
    return ids.to(device), mask.to(device)
