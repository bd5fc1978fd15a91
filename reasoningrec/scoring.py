"""P(Yes) in one forward pass, and explanations that state the scored label.

The prediction is the first thing a fine-tuned model writes (``Prediction: Yes|No``), so its
probability is read straight from the next-token distribution after the prompt plus the assistant
prefix ``Prediction:``; nothing is generated and no text is parsed for AUC. The paper's recipe
(generate 256 tokens, then look for a Yes/No token) gives the same number at a fraction of the speed
(see ``benchmarks/scoring_speed.py``).

Explanations come in two modes (``evaluate.explanations``):

* ``consistent`` (default): the label is the scored one (P(Yes) >= 0.5); the model writes its reasoning
  after the forced answer ``Prediction: <label>``, so every explanation parses and states the label
  the score gave.
* ``free``: the paper's free generation; the model writes the prediction itself. The parse rate and the
  agreement of the stated label with the scored one are then measured.

Conventions every caller relies on:

* ``prompts`` are *rendered* chat prompts, ending with the generation prompt (the ``prompt`` column
  that :mod:`reasoningrec.records` renders and TRL trains on). :func:`score_prompts` appends
  :data:`~reasoningrec.answer.ANSWER_PREFIX` itself.
* Tokenisation is ``tokenizer(text)`` with the tokenizer's default special tokens, exactly as TRL
  tokenises a prompt/completion record, so train and score see the same ids.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from reasoningrec.answer import ANSWER_PREFIX, answer_token_ids, format_answer, parse_answer
from reasoningrec.models import model_device
from reasoningrec.progress import progress as progress_bar

log = logging.getLogger(__name__)

EXPLANATION_MODES = ("consistent", "free")
DECISION_THRESHOLD = 0.5


@dataclass(frozen=True)
class Explanation:
    """One generated completion: the full text (forced answer included), the stated label (1/0,
    None = no prediction found), and the reasoning after it."""

    text: str
    label: int | None
    reasoning: str

    @property
    def parsed(self) -> bool:
        return self.label is not None


def scored_labels(p_yes) -> np.ndarray:
    """The label a score states: 1 where P(Yes) >= 0.5."""
    return (np.asarray(p_yes, dtype=np.float64) >= DECISION_THRESHOLD).astype(np.int64)


# ---------------------------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------------------------


def score_prompts(
    model,
    tokenizer,
    prompts: list[str],
    batch_size: int = 8,
    *,
    answer_ids: tuple[int, int] | None = None,
    progress: str | None = None,
) -> np.ndarray:
    """P(Yes) for each rendered prompt: softmax over the (Yes, No) logits after ``prompt + "Prediction:"``.

    One forward pass per batch. Prompts are sorted by length (longest first, so an out-of-memory shows
    up on the first batch), left-padded only to their batch's longest, and the model computes logits
    for the last position only (``logits_to_keep=1``). Position ids follow the attention mask so a
    padded row scores exactly like the same prompt alone. Returns float64 in the input order.
    The model's train/eval mode is restored afterwards (the trainer calls this between epochs).
    ``progress``: a label to show progress under (:mod:`reasoningrec.progress`); None = silent.
    """
    import torch

    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    yes_id, no_id = answer_ids or answer_token_ids(tokenizer)
    encoded = [_encode(tokenizer, prompt + ANSWER_PREFIX) for prompt in prompts]
    scores = np.empty(len(prompts), dtype=np.float64)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), progress_bar(len(prompts), progress, "prompts") as bar:
            for rows in _length_batches(encoded, batch_size):
                ids, mask = _left_pad([encoded[i] for i in rows], _pad_id(tokenizer), model_device(model))
                logits = model(
                    input_ids=ids,
                    attention_mask=mask,
                    position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
                    logits_to_keep=1,
                    use_cache=False,
                ).logits[:, -1, :]
                pair = logits[:, [yes_id, no_id]].float()
                scores[rows] = torch.softmax(pair, dim=-1)[:, 0].cpu().double().numpy()
                bar.update(len(rows))
    finally:
        model.train(was_training)
    return scores


def generate_explanations(
    model,
    tokenizer,
    prompts: list[str],
    max_new_tokens: int = 256,
    batch_size: int = 8,
    engine: str = "auto",
    *,
    labels: Sequence[int] | None = None,
    progress: str | None = None,
) -> list[Explanation]:
    """Greedy completions for rendered prompts, batched by length.

    ``labels`` given (consistent mode): each prompt is continued after the forced answer
    ``Prediction: <label>`` and a newline, and the returned text starts with that answer. Without
    ``labels`` (free mode) the model writes the prediction itself.

    ``engine``: ``generate`` (``model.generate``), ``static`` (static KV cache, the decode step as a
    CUDA graph on GPUs: :mod:`reasoningrec.llm.static_decode`) or ``auto`` (static on CUDA for
    unquantized weights). Both are greedy and give the same tokens.

    Parse failures (free mode: no ``Prediction: Yes|No`` in the text) come back with ``label=None``.
    ``progress``: a label to show progress under (:mod:`reasoningrec.progress`); None = silent.
    """
    import torch

    from reasoningrec.llm.hf import eos_token_ids
    from reasoningrec.llm.static_decode import decoder_for

    if labels is not None and len(labels) != len(prompts):
        raise ValueError(f"{len(labels)} labels for {len(prompts)} prompts")
    forced = [f"{format_answer(int(label))}\n" for label in labels] if labels is not None else [""] * len(prompts)
    encoded = [_encode(tokenizer, prompt + answer) for prompt, answer in zip(prompts, forced, strict=True)]
    texts: list[str] = [""] * len(prompts)
    pad_id = _pad_id(tokenizer)
    device = model_device(model)
    decoder = decoder_for(model, engine)
    eos_ids = eos_token_ids(tokenizer, model.generation_config)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), progress_bar(len(prompts), progress, "explanations") as bar:
            for rows in _length_batches(encoded, batch_size):
                ids, mask = _left_pad([encoded[i] for i in rows], pad_id, device)
                if decoder is not None:
                    new = decoder.generate(
                        ids,
                        mask,
                        max_new_tokens=max_new_tokens,
                        pad_id=pad_id,
                        eos_ids=eos_ids,
                    )
                else:
                    new = model.generate(
                        input_ids=ids,
                        attention_mask=mask,
                        max_new_tokens=max_new_tokens,
                        do_sample=False,
                        pad_token_id=pad_id,
                    )[:, ids.shape[1] :]
                for row, seq in zip(rows, new, strict=True):
                    texts[row] = forced[row] + tokenizer.decode(seq, skip_special_tokens=True).strip()
                bar.update(len(rows))
    finally:
        model.train(was_training)
    explanations = []
    for text in texts:
        answer = parse_answer(text)
        explanations.append(Explanation(text.strip(), answer.label, answer.reasoning))
    failures = sum(not e.parsed for e in explanations)
    if failures:
        log.warning("explanations: %d of %d completions have no 'Prediction: Yes|No'", failures, len(texts))
    return explanations


def explain(
    model,
    tokenizer,
    prompts: list[str],
    p_yes,
    *,
    mode: str = "consistent",
    max_new_tokens: int = 256,
    batch_size: int = 8,
    engine: str = "auto",
    progress: str | None = None,
) -> list[Explanation]:
    """Explanations of scored prompts in ``mode`` (``consistent``: after the scored label; ``free``)."""
    if mode not in EXPLANATION_MODES:
        raise ValueError(f"unknown explanation mode {mode!r} (expected one of {EXPLANATION_MODES})")
    labels = scored_labels(p_yes).tolist() if mode == "consistent" else None
    return generate_explanations(
        model, tokenizer, prompts, max_new_tokens, batch_size, engine, labels=labels, progress=progress
    )


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def _encode(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text)["input_ids"])


def _pad_id(tokenizer) -> int:
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return int(pad if pad is not None else 0)


def _length_batches(encoded: list[list[int]], batch_size: int) -> list[np.ndarray]:
    order = np.argsort([-len(ids) for ids in encoded], kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def _left_pad(seqs: list[list[int]], pad_id: int, device):
    import torch

    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, seq in enumerate(seqs):
        ids[row, width - len(seq) :] = torch.tensor(seq, dtype=torch.long)
        mask[row, width - len(seq) :] = 1
    return ids.to(device), mask.to(device)
