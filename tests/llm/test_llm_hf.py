"""The local Hugging Face backend on a tiny random Llama chat model (built offline in ~1 s)."""

from __future__ import annotations

import pytest

from reasoningrec.llm.base import GenerationSettings
from reasoningrec.llm.hf import (
    HFBackend,
    length_order,
    sampling_kwargs,
    split_completion,
)


@pytest.fixture(scope="module")
def backend(tiny_model_dir):
    b = HFBackend(str(tiny_model_dir), batch_size=3, device="cpu")
    b.load()
    return b


def chat(text: str, system: str | None = None):
    conv = [{"role": "system", "content": system}] if system else []
    return conv + [{"role": "user", "content": text}]


PROMPTS = [
    chat("Will the user like the target item? Answer with Prediction: Yes or No and reasoning. " * 3),
    chat("Yes or No?"),
    chat("Toy Story (1995) Animation|Children's|Comedy.", system="You are an expert recommender."),
    chat("Liked Fresh Eau De Parfum. " * 5),
    chat("Heat"),
]


def test_split_completion_cuts_at_first_eos_and_names_the_reason():
    assert split_completion([5, 6, 2, 9, 9], {2}, 5) == ([5, 6], 3, "stop")
    assert split_completion([2, 0, 0], {2}, 3) == ([], 1, "stop")
    assert split_completion([5, 6, 7], {2}, 3) == ([5, 6, 7], 3, "length")
    assert split_completion([5, 3, 4], {2, 3}, 3) == ([5], 2, "stop")  # any of several EOS ids


def test_sampling_follows_the_settings():
    greedy = sampling_kwargs(GenerationSettings(temperature=0, max_new_tokens=7))
    assert greedy == {"do_sample": False, "max_new_tokens": 7}
    sampled = sampling_kwargs(GenerationSettings(temperature=0.01, top_p=0.75))
    assert sampled == {"do_sample": True, "temperature": 0.01, "top_p": 0.75, "max_new_tokens": 256}


def test_length_order():
    assert length_order([5, 1, 5, 0]) == [3, 1, 0, 2]


def test_replies_come_back_in_input_order_with_token_counts(backend):
    _, tokenizer, _ = backend.load()
    settings = GenerationSettings(temperature=0, max_new_tokens=6)
    out = backend.generate(PROMPTS, settings)
    assert len(out) == len(PROMPTS)
    expected = [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in backend.prompt_texts(PROMPTS)]
    assert len(set(expected)) == len(expected)  # distinct lengths: a mix-up could not hide
    assert [g.prompt_tokens for g in out] == expected
    for g in out:
        assert 1 <= g.completion_tokens <= 6
        assert g.finish_reason in {"stop", "length"}
        assert g.finish_reason == "stop" or g.completion_tokens == 6
        assert not g.cached


def test_each_micro_batch_reaches_on_reply_as_it_finishes(backend):
    groups: list[list[int]] = []
    handed: dict[int, str] = {}

    def on_reply(pairs):
        groups.append([i for i, _ in pairs])
        handed.update((i, g.text) for i, g in pairs)

    out = backend.generate(PROMPTS, GenerationSettings(temperature=0, max_new_tokens=4), on_reply=on_reply)
    assert [len(group) for group in groups] == [3, 2]  # batch_size 3 over 5 prompts
    assert sorted(i for group in groups for i in group) == list(range(len(PROMPTS)))
    assert handed == {i: g.text for i, g in enumerate(out)}


def test_batched_greedy_equals_one_at_a_time(backend, tiny_model_dir):
    settings = GenerationSettings(temperature=0, max_new_tokens=8)
    batched = backend.generate(PROMPTS, settings)
    single = HFBackend.from_loaded(*backend.load()[:2], model_id=str(tiny_model_dir), batch_size=1)
    one_by_one = single.generate(PROMPTS, settings)
    assert [g.text for g in batched] == [g.text for g in one_by_one]
    assert [g.completion_tokens for g in batched] == [g.completion_tokens for g in one_by_one]


def test_max_new_tokens_hit_reports_length(backend):
    # min_new_tokens forbids EOS, so every row must run out of its token budget.
    forced = HFBackend.from_loaded(*backend.load()[:2], model_id="tiny", generate_kwargs={"min_new_tokens": 4})
    out = forced.generate(PROMPTS[:2], GenerationSettings(temperature=0, max_new_tokens=4))
    assert [(g.completion_tokens, g.finish_reason) for g in out] == [(4, "length"), (4, "length")]


def test_sampling_is_seeded_per_call(backend):
    hot = GenerationSettings(temperature=1.0, top_p=1.0, max_new_tokens=12, seed=7)
    first = [g.text for g in backend.generate(PROMPTS[:3], hot)]
    again = [g.text for g in backend.generate(PROMPTS[:3], hot)]
    other = [g.text for g in backend.generate(PROMPTS[:3], GenerationSettings(1.0, 1.0, 12, seed=8))]
    assert first == again
    assert first != other


def test_empty_batch_and_bad_messages(backend):
    assert backend.generate([], GenerationSettings()) == []
    with pytest.raises(ValueError, match="conversation 0, message 0"):
        backend.generate([[{"role": "user"}]], GenerationSettings())


def test_model_without_chat_template_is_refused(tiny_model_dir, tmp_path):
    import json
    import shutil

    from reasoningrec.errors import ConfigError

    copy = tmp_path / "plain"
    shutil.copytree(tiny_model_dir, copy)
    (copy / "chat_template.jinja").unlink(missing_ok=True)
    config = json.loads((copy / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (copy / "tokenizer_config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="no chat template"):
        HFBackend(str(copy), device="cpu").load()
