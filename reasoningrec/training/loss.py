"""The answer-weighted completion loss, as pure tensor functions."""

from __future__ import annotations

# The answer token sits right after "Prediction:" at the start of the completion; look no further.
ANSWER_SEARCH_TOKENS = 8


def answer_token_weights(shifted_labels, yes_id: int, no_id: int, weight: float):
    """Per-token loss weights aligned with next-token labels: 0 on ignored (-100) positions, 1 on
    completion tokens, ``weight`` on the answer token (the first " Yes"/" No" among the first
    :data:`ANSWER_SEARCH_TOKENS` completion tokens of each row)."""
    import torch

    valid = shifted_labels != -100
    rank = valid.long().cumsum(dim=1) - 1
    candidate = valid & ((shifted_labels == yes_id) | (shifted_labels == no_id)) & (rank < ANSWER_SEARCH_TOKENS)
    first = candidate & (candidate.long().cumsum(dim=1) == 1)
    return valid.to(torch.float32).masked_fill(first, float(weight))


def weighted_completion_loss(log_probs, shifted_labels, yes_id: int, no_id: int, weight: float, num_tokens=None):
    """sum_i w_i * CE_i / N, with N the number of completion tokens (``num_tokens`` when the Trainer
    accumulates gradients over several micro-batches). ``weight == 1`` is exactly the plain loss."""
    import torch

    weights = answer_token_weights(shifted_labels, yes_id, no_id, weight).to(log_probs.dtype)
    count = (shifted_labels != -100).sum() if num_tokens is None else num_tokens
    return -(log_probs * weights).sum() / torch.as_tensor(count, device=log_probs.device).clamp(min=1)
