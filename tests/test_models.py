"""Model loading: names, precision from the hardware, loaders, chat rendering."""

from __future__ import annotations

import pytest

from reasoningrec import models
from reasoningrec.errors import ConfigError


def test_choose_precision():
    assert models.choose_precision("auto", cuda=False) == "fp32"
    assert models.choose_precision("auto", cuda=True, bf16_supported=True) == "bf16"
    assert models.choose_precision("auto", cuda=True, bf16_supported=False) == "fp32"
    assert models.choose_precision("nf4", cuda=True) == "nf4"
    with pytest.raises(ConfigError, match="unknown precision 'fp8'"):
        models.choose_precision("fp8", cuda=True)


def test_inference_precision_follows_the_generation_settings():
    assert models.inference_precision("auto", "none", "cpu") == "fp32"
    assert models.inference_precision("auto", "none", "cuda:0") == "bf16"
    assert models.inference_precision("bfloat16", "none", "cpu") == "bf16"
    assert models.inference_precision("float32", "none", "cuda") == "fp32"
    assert models.inference_precision("auto", "nf4", "cuda") == "nf4"
    assert models.inference_precision("auto", "int8", "cpu") == "fp32"  # quantization needs CUDA
    with pytest.raises(ConfigError, match="quantization"):
        models.inference_precision("auto", "fp4", "cuda")


def test_loaders_give_an_eval_model_and_a_padded_tokenizer(tiny_model_dir):
    import torch

    model = models.load_causal_lm(str(tiny_model_dir), "fp32", device="cpu")
    assert not model.training and next(model.parameters()).dtype == torch.float32
    training = models.load_causal_lm(str(tiny_model_dir), "bf16", device="cpu", for_training=True)
    assert next(training.parameters()).dtype == torch.bfloat16
    tokenizer = models.load_tokenizer(str(tiny_model_dir), padding_side="left")
    assert tokenizer.pad_token is not None and tokenizer.padding_side == "left"


def test_adapter_folder_without_metadata_is_a_clear_error(tmp_path):
    from reasoningrec.errors import ReasoningRecError

    with pytest.raises(ReasoningRecError, match="adapter metadata not found"):
        models.load_adapter(tmp_path)
