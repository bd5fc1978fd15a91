"""Adapter files: an adapter that learned nothing is refused and nothing is written."""

from __future__ import annotations

import pytest

from reasoningrec.training.adapter import TrainingError, save_adapter


def test_empty_adapter_is_refused(tiny_model_dir, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    peft = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))  # B starts at zero
    with pytest.raises(TrainingError, match="empty"):
        save_adapter(peft, AutoTokenizer.from_pretrained(tiny_model_dir), tmp_path / "adapter", {"base_model": "x"})
    assert not (tmp_path / "adapter").exists()
