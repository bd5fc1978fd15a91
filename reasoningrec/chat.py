"""Chat rendering: a user message as the model's chat template renders it, and TRL's prompt/completion pair."""

from __future__ import annotations

from reasoningrec.errors import ConfigError


def require_chat_template(tokenizer) -> None:
    """Raise :class:`ConfigError` for a tokenizer without a chat template (a base, not instruct, model)."""
    if not getattr(tokenizer, "chat_template", None):
        name = getattr(tokenizer, "name_or_path", type(tokenizer).__name__)
        raise ConfigError(f"tokenizer {name} has no chat template; an instruction-tuned (chat) model is needed")


def render_chat(tokenizer, prompt_text: str) -> str:
    """The rendered chat prompt for one user message, ending with the assistant generation prompt."""
    require_chat_template(tokenizer)
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt_text}], tokenize=False, add_generation_prompt=True
    )


def render_example(tokenizer, prompt_text: str, completion_text: str) -> tuple[str, str]:
    """(prompt, completion) strings in TRL's prompt/completion format.

    The completion is the assistant turn as the chat template renders it, up to and including the
    end-of-turn token (EOS); trailing whitespace after it is dropped so TRL does not add a second EOS.
    """
    prompt = render_chat(tokenizer, prompt_text)
    full = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt_text}, {"role": "assistant", "content": completion_text}],
        tokenize=False,
    )
    # Some templates render the generation prompt differently from a finished turn (e.g. empty
    # thinking blocks); the assistant content then follows the generation prompt directly.
    completion = full[len(prompt) :] if full.startswith(prompt) else completion_text + (tokenizer.eos_token or "")
    eos = tokenizer.eos_token
    if eos and completion.rstrip().endswith(eos):
        completion = completion.rstrip()
    return prompt, completion


def count_tokens(tokenizer, prompt: str, completion: str) -> int:
    """Tokens of the rendered prompt + completion, tokenised as TRL does."""
    return len(tokenizer(prompt + completion)["input_ids"])
