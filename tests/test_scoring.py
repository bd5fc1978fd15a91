"""P(Yes) scoring: answer ids, one-pass scores vs generate(), batching invariance, parsing, adapters."""

from __future__ import annotations

import numpy as np
import pytest

from reasoningrec.answer import ANSWER_PREFIX, answer_token_ids
from reasoningrec.chat import render_chat
from reasoningrec.models import load_adapter
from reasoningrec.scoring import generate_explanations, score_prompts

PROMPTS = [
    "The user liked Toy Story (1995). Will the user like the target movie Heat (1995)?",
    'Liked "Yes Man". Disliked "No Country for Old Men". Target: "Yes, Madam". Prediction: No?',
    "Short one.",
    "User profile: the user prefers natural ingredients, gentle scents and good value for money. "
    "Liked Fresh Eau De Parfum. Disliked a shampoo that dried the hair. Will the user like it?",
    "Target item: Jumanji (1995) Adventure|Fantasy. Yes or No?",
]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = tiny_model_dir
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    # Random-init logits are nearly uniform; scale the head so P(Yes) spreads out and the tests can tell.
    with torch.no_grad():
        model.get_output_embeddings().weight.mul_(4)
    return path, model.eval(), AutoTokenizer.from_pretrained(path)


def test_answer_ids_are_the_spaced_words_after_prediction(tiny):
    _, _, tok = tiny
    yes_id, no_id = answer_token_ids(tok)
    assert yes_id != no_id
    assert tok.decode([yes_id]) == " Yes" and tok.decode([no_id]) == " No"
    # Resolved from the rendered continuation, not the bare word.
    assert tok.encode("Yes", add_special_tokens=False) != [yes_id]


def test_answer_ids_reject_a_tokenizer_that_splits_the_answer(tiny):
    from reasoningrec.errors import ConfigError

    _, _, tok = tiny

    class Splitting:
        chat_template = tok.chat_template
        name_or_path = "splitting"

        def apply_chat_template(self, *a, **k):
            return tok.apply_chat_template(*a, **k)

        def __call__(self, text):  # characters as tokens: " Yes" is 4 tokens
            return {"input_ids": [ord(c) for c in text]}

        def decode(self, ids):
            return "".join(chr(i) for i in ids)

    with pytest.raises(ConfigError, match="one token"):
        answer_token_ids(Splitting())


def test_one_pass_p_yes_equals_generate_first_token(tiny):
    import torch

    _, model, tok = tiny
    yes_id, no_id = answer_token_ids(tok)
    rendered = [render_chat(tok, p) for p in PROMPTS]
    scores = score_prompts(model, tok, rendered, batch_size=3)
    for prompt, score in zip(rendered, scores, strict=True):
        ids = tok(prompt + ANSWER_PREFIX, return_tensors="pt")
        out = model.generate(
            **ids,
            max_new_tokens=1,
            do_sample=False,
            output_logits=True,
            return_dict_in_generate=True,
            pad_token_id=tok.pad_token_id,
        )
        first = out.logits[0][0]
        expected = torch.softmax(first[[yes_id, no_id]].double(), -1)[0].item()
        assert score == pytest.approx(expected, abs=1e-5)
    assert scores.std() > 1e-3  # the prompts really score differently


def test_batching_and_padding_do_not_change_scores(tiny):
    _, model, tok = tiny
    rendered = [render_chat(tok, p) for p in PROMPTS]
    alone = score_prompts(model, tok, rendered, batch_size=1)
    together = score_prompts(model, tok, rendered, batch_size=5)
    reversed_order = score_prompts(model, tok, rendered[::-1], batch_size=2)[::-1]
    np.testing.assert_allclose(together, alone, atol=1e-5)
    np.testing.assert_allclose(reversed_order, alone, atol=1e-5)
    assert ((alone > 0) & (alone < 1)).all()


def test_progress_changes_nothing_but_the_display(tiny, monkeypatch, caplog, capsys):
    """Scores and explanations are the same silent, as log lines (a pipe) and under a bar (a terminal)."""
    import logging

    _, model, tok = tiny
    rendered = [render_chat(tok, p) for p in PROMPTS]
    silent = score_prompts(model, tok, rendered, batch_size=2)
    texts = [e.text for e in generate_explanations(model, tok, rendered[:3], max_new_tokens=4, batch_size=2)]
    caplog.set_level(logging.INFO, logger="reasoningrec.progress")
    monkeypatch.setenv("REASONINGREC_PROGRESS", "never")
    logged = score_prompts(model, tok, rendered, batch_size=2, progress="score test")
    explained = generate_explanations(model, tok, rendered[:3], max_new_tokens=4, batch_size=2, progress="explain")
    monkeypatch.setenv("REASONINGREC_PROGRESS", "always")
    barred = score_prompts(model, tok, rendered, batch_size=2, progress="score test")
    np.testing.assert_array_equal(logged, silent)
    np.testing.assert_array_equal(barred, silent)
    assert [e.text for e in explained] == texts
    lines = [r.getMessage() for r in caplog.records if r.name == "reasoningrec.progress"]
    assert lines[0] == "score test: 5 prompts" and lines[1].startswith("score test: 5 prompts in ")
    assert lines[2] == "explain: 3 explanations" and lines[3].startswith("explain: 3 explanations in ")
    assert len(lines) == 4
    shown = capsys.readouterr().err
    assert "score test" in shown and "5/5" in shown


def test_scoring_restores_training_mode(tiny):
    _, model, tok = tiny
    model.train()
    score_prompts(model, tok, [render_chat(tok, PROMPTS[0])])
    assert model.training
    model.eval()


def test_generate_explanations_is_greedy_and_batched(tiny):
    _, model, tok = tiny
    rendered = [render_chat(tok, p) for p in PROMPTS[:3]]
    batched = generate_explanations(model, tok, rendered, max_new_tokens=6, batch_size=3)
    single = generate_explanations(model, tok, rendered[1:2], max_new_tokens=6, batch_size=1)
    assert len(batched) == 3
    assert batched[1].text == single[0].text
    assert all(e.label is None or e.label in (0, 1) for e in batched)


def test_adapter_round_trip_gives_the_same_scores(tiny, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from reasoningrec.training.adapter import save_adapter

    path, _, tok = tiny
    torch.manual_seed(1)
    base = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    peft = get_peft_model(
        base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    ).eval()
    rendered = [render_chat(tok, p) for p in PROMPTS]
    before = score_prompts(peft, tok, rendered)
    save_adapter(
        peft, tok, tmp_path / "adapter", {"base_model": str(path), "answer_token_ids": list(answer_token_ids(tok))}
    )
    model, tokenizer, meta = load_adapter(tmp_path / "adapter", device="cpu")
    after = score_prompts(model, tokenizer, rendered)
    np.testing.assert_allclose(after, before, atol=1e-6)
    assert meta["base_model"] == str(path)
    # The adapter really changes the model (a silently dropped adapter would not).
    plain = score_prompts(AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32), tok, rendered)
    assert np.abs(plain - after).max() > 1e-4
    # An explicit dtype wins over the device default (fp32 scoring on a GPU for exact agreement).
    half, _, _ = load_adapter(tmp_path / "adapter", device="cpu", dtype=torch.bfloat16)
    assert next(half.parameters()).dtype == torch.bfloat16
    np.testing.assert_allclose(score_prompts(half, tokenizer, rendered), after, atol=0.05)
