"""The static-cache decode engine against ``model.generate`` on a tiny random Llama (CPU, eager)."""

from __future__ import annotations

import pytest

from reasoningrec.llm.base import GenerationSettings
from reasoningrec.llm.hf import HFBackend
from reasoningrec.llm.static_decode import StaticDecoder, filter_top_p, pick_engine, round_up


def chat(text: str):
    return [{"role": "user", "content": text}]


PROMPTS = [
    chat("Will the user like the target item? Answer Prediction: Yes or No. " * 3),
    chat("Yes or No?"),
    chat("Toy Story (1995) Animation|Children's|Comedy."),
    chat("Liked Fresh Eau De Parfum. " * 5),
    chat("Heat"),
]


def backends(tiny_model_dir, **kwargs):
    generate = HFBackend(str(tiny_model_dir), batch_size=2, device="cpu", engine="generate", **kwargs)
    generate.load()
    model, tokenizer, _ = generate.load()
    static = HFBackend.from_loaded(model, tokenizer, str(tiny_model_dir), batch_size=2, engine="static", **kwargs)
    return generate, static


def test_engine_choice():
    assert pick_engine("auto", "cuda") == "static"
    assert pick_engine("auto", "cuda:1", quantized=True) == "generate"
    assert pick_engine("auto", "cpu") == "generate"
    assert pick_engine("static", "cpu") == "static"
    with pytest.raises(ValueError, match="unknown decode engine 'vllm'"):
        pick_engine("vllm", "cpu")
    with pytest.raises(ValueError, match="unknown decode engine"):
        HFBackend("x", engine="fast")
    assert round_up(1, 256) == 256 and round_up(256, 256) == 256 and round_up(257, 256) == 512


def test_greedy_static_equals_generate_token_for_token(tiny_model_dir):
    generate, static = backends(tiny_model_dir)
    settings = GenerationSettings(temperature=0, max_new_tokens=24)
    expected = generate.generate(PROMPTS, settings)
    got = static.generate(PROMPTS, settings)
    assert [g.text for g in got] == [g.text for g in expected]
    assert [g.completion_tokens for g in got] == [g.completion_tokens for g in expected]
    assert [g.finish_reason for g in got] == [g.finish_reason for g in expected]
    assert [g.prompt_tokens for g in got] == [g.prompt_tokens for g in expected]


def test_min_new_tokens_forces_the_length(tiny_model_dir):
    _, static = backends(tiny_model_dir, generate_kwargs={"min_new_tokens": 9})
    out = static.generate(PROMPTS, GenerationSettings(temperature=0, max_new_tokens=9))
    assert all(g.completion_tokens == 9 and g.finish_reason == "length" for g in out)


def test_sampling_is_seeded_and_top_p_keeps_the_head():
    import torch

    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    assert torch.allclose(filter_top_p(probs, 0.7), torch.tensor([[0.625, 0.375, 0.0, 0.0]]))
    assert torch.allclose(filter_top_p(probs, 0.01), torch.tensor([[1.0, 0.0, 0.0, 0.0]]))
    assert torch.equal(filter_top_p(probs, 1.0), probs)


def test_sampled_generations_repeat_with_the_same_seed(tiny_model_dir):
    _, static = backends(tiny_model_dir)
    settings = GenerationSettings(temperature=1.0, top_p=0.95, max_new_tokens=12, seed=3)
    first = [g.text for g in static.generate(PROMPTS, settings)]
    assert [g.text for g in static.generate(PROMPTS, settings)] == first
    other = [
        g.text
        for g in static.generate(PROMPTS, GenerationSettings(temperature=1.0, top_p=0.95, max_new_tokens=12, seed=4))
    ]
    assert other != first


def test_rows_stop_at_eos_and_padding_rows_are_dropped(tiny_model_dir):
    import torch

    generate, _ = backends(tiny_model_dir)
    model, tokenizer, _ = generate.load()
    decoder = StaticDecoder(model, compile_step=False, cache_bucket=8)
    ids = torch.tensor([[5, 6, 7, 8], [0, 0, 9, 10]])
    mask = torch.tensor([[1, 1, 1, 1], [0, 0, 1, 1]])
    # Every token is an EOS: each row ends at its first token, and the loop stops at the first check.
    out = decoder.generate(ids, mask, max_new_tokens=40, eos_ids=set(range(model.config.vocab_size)), pad_id=0)
    assert out.shape == (2, 16)
    assert (out[:, 1:] == 0).all()
    reference = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=6, do_sample=False, pad_token_id=0)
    greedy = decoder.generate(ids, mask, max_new_tokens=6, eos_ids=set(), pad_id=0)
    assert torch.equal(greedy, reference[:, 4:])


def test_decode_attention_equals_sdpa_for_grouped_heads_and_padding():
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    from reasoningrec.llm.static_decode import decode_attention

    torch.manual_seed(0)
    module = torch.nn.Module()
    module.num_key_value_groups, module.is_causal = 4, True
    query, key, value = torch.randn(3, 8, 1, 16), torch.randn(3, 2, 10, 16), torch.randn(3, 2, 10, 16)
    mask = torch.ones(3, 1, 1, 10, dtype=torch.bool)
    mask[0, ..., :3] = False  # left padding
    mask[1, ..., 7:] = False  # empty cache slots
    ours, _ = decode_attention(module, query, key, value, mask, scaling=0.25)
    reference, _ = sdpa_attention_forward(module, query, key, value, mask, scaling=0.25)
    assert ours.shape == reference.shape == (3, 1, 8, 16)
    assert torch.allclose(ours, reference, atol=1e-5)
    prefill, _ = decode_attention(module, torch.randn(3, 8, 4, 16), key, value, None)  # > 1 query: SDPA
    assert prefill.shape == (3, 4, 8, 16)


def test_static_engine_with_decode_attention_still_equals_generate(tiny_model_dir):
    import torch

    from reasoningrec.llm.static_decode import DECODE_ATTENTION

    generate, _ = backends(tiny_model_dir)
    model, tokenizer, _ = generate.load()
    ids = torch.tensor([[5, 6, 7, 8], [0, 0, 9, 10]])
    mask = torch.tensor([[1, 1, 1, 1], [0, 0, 1, 1]])
    reference = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=8, do_sample=False, pad_token_id=0)
    decoder = StaticDecoder(model, compile_step=False, cache_bucket=8, fast_attention=True)
    try:
        assert model.config._attn_implementation == DECODE_ATTENTION
        assert torch.equal(decoder.generate(ids, mask, max_new_tokens=8, eos_ids=set(), pad_id=0), reference[:, 4:])
    finally:
        model.set_attn_implementation("sdpa")


def test_one_decoder_per_model_and_none_where_generate_is_chosen(tiny_model_dir):
    from reasoningrec.llm.static_decode import decoder_for

    generate, static = backends(tiny_model_dir)
    model, _, _ = generate.load()
    assert decoder_for(model, "auto") is None  # CPU: generate
    assert decoder_for(model, "static", quantized=True) is not None  # an explicit choice wins
    assert decoder_for(model, "static") is decoder_for(model, "static") is static.static_decoder()
    assert generate.static_decoder() is None
