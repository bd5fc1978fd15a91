"""A tiny random chat model for tests and smoke runs, built offline in about a second.

The model is a real ``LlamaForCausalLM`` (q_proj/v_proj exist, so LoRA recipes apply unchanged) with
random weights, and the tokenizer is a byte-level BPE trained in-process on a small corpus so that
" Yes" and " No" — the answer tokens after "Prediction:" — are single tokens, as in SmolLM2.
"""

from __future__ import annotations

from pathlib import Path

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

_CORPUS = [
    "Prediction: Yes",
    "Prediction: No",
    "The user liked this item. The user disliked that item. Yes or No?",
    "User profile: the user prefers natural ingredients, gentle scents and good value for money.",
    "Liked Fresh Eau De Parfum. Disliked a shampoo that dried the hair. Brand: Braun Price: $27.19",
    "Description: a moisturising cream with a light scent; strong points and weak points of the product.",
    "Will the user like the target item? Answer with Prediction: Yes or Prediction: No and reasoning.",
    "Toy Story (1995) Animation|Children's|Comedy. Jumanji (1995) Adventure|Fantasy. Heat (1995) Action",
    "because the user enjoyed similar movies and products in the recent history, so they will like it",
    "because the user dislikes strong fragrances and the reviews say it is too strong, so not",
    "You are an expert recommender. Use only the information given. Write at most 25 words.",
    "0123456789 .,;:!?'\"()[]{}-_/|&$%#@*+=<>",
]


def build_tiny_tokenizer(vocab_size: int = 1024):
    """A byte-level BPE tokenizer with a ChatML template; " Yes" and " No" are single tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    # Repetition makes the answer words the most frequent merges, so they end up as single tokens.
    tok.train_from_iterator(_CORPUS * 50 + ["Prediction: Yes Prediction: No"] * 500, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )
    fast.chat_template = CHAT_TEMPLATE
    for word in (" Yes", " No"):
        ids = fast.encode(word, add_special_tokens=False)
        if len(ids) != 1:
            raise RuntimeError(f"tiny tokenizer splits {word!r} into {ids}; expected one token")
    return fast


def build_tiny_chat_model(
    path: str | Path, *, seed: int = 0, hidden_size: int = 64, initializer_range: float = 0.02
) -> Path:
    """Write a tiny random Llama chat model + tokenizer to ``path`` (save_pretrained layout).

    With the default weight scale its greedy replies are one token repeated (newlines, which decode
    to ""); ``initializer_range=0.3`` gives each prompt its own reply, for tests that compare texts."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    path = Path(path)
    tokenizer = build_tiny_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
        initializer_range=initializer_range,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
