"""Adapter files: written atomically with their metadata, refused when nothing was learned."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from reasoningrec.errors import ReasoningRecError
from reasoningrec.io import write_json
from reasoningrec.models import ADAPTER_META

ADAPTER_DIR = "adapter"  # the best adapter's folder inside a training run's out_dir


class TrainingError(ReasoningRecError):
    """Training produced an unusable result (e.g. an empty adapter)."""


def save_adapter(model, tokenizer, adapter_dir: Path, meta: dict) -> Path:
    """Write adapter + tokenizer + ``reasoningrec.json`` atomically (temp folder, then rename),
    refusing an adapter whose LoRA B matrices are all zero (nothing was learned or saved)."""
    adapter_dir = Path(adapter_dir)
    tmp = adapter_dir.with_name(f".{adapter_dir.name}.tmp")
    old = adapter_dir.with_name(f".{adapter_dir.name}.old")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    check_adapter_not_empty(tmp)
    write_json(tmp / ADAPTER_META, meta)
    shutil.rmtree(old, ignore_errors=True)
    if adapter_dir.exists():
        os.replace(adapter_dir, old)
    os.replace(tmp, adapter_dir)
    shutil.rmtree(old, ignore_errors=True)
    return adapter_dir


def check_adapter_not_empty(adapter_dir: Path) -> int:
    """Number of LoRA B tensors with a non-zero entry; raises :class:`TrainingError` when there are none."""
    from safetensors import safe_open

    path = Path(adapter_dir) / "adapter_model.safetensors"
    if not path.is_file():
        raise TrainingError(f"{path}: adapter weights were not written")
    nonzero = total = 0
    with safe_open(str(path), framework="pt") as handle:
        for key in handle.keys():  # noqa: SIM118 (safe_open is not a mapping)
            if "lora_B" in key:
                total += 1
                nonzero += bool(handle.get_tensor(key).abs().sum() > 0)
    if nonzero == 0:
        raise TrainingError(f"{path}: adapter is empty ({total} LoRA B tensors, all zero): nothing would be applied")
    return nonzero
