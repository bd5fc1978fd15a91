"""Chat rendering: TRL's prompt/completion pair, refusal of tokenizers without a chat template."""

from __future__ import annotations

import pytest

from reasoningrec import chat, models
from reasoningrec.errors import ConfigError


def test_render_example_is_trl_prompt_completion(tiny_model_dir):
    tok = models.load_tokenizer(str(tiny_model_dir))
    prompt, completion = chat.render_example(tok, "Will the user like it?", "Prediction: Yes\nBecause.")
    assert prompt.endswith("<|im_start|>assistant\n")
    assert completion == "Prediction: Yes\nBecause.<|im_end|>"  # one EOS, no trailing newline
    assert chat.render_chat(tok, "Will the user like it?") == prompt
    assert chat.count_tokens(tok, prompt, completion) == len(tok(prompt + completion)["input_ids"])


def test_a_tokenizer_without_chat_template_is_refused(tiny_model_dir):
    tok = models.load_tokenizer(str(tiny_model_dir))
    tok.chat_template = None
    with pytest.raises(ConfigError, match="no chat template"):
        chat.render_chat(tok, "hello")
