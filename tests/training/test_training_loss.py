"""The answer-weighted completion loss against hand computations."""

from __future__ import annotations

import pytest

from reasoningrec.training.loss import answer_token_weights, weighted_completion_loss


def test_answer_weights_mark_only_the_first_answer_token():
    import torch

    yes, no = 7, 8
    labels = torch.tensor(
        [
            [-100, -100, 5, 6, 7, 9, 8, 7],  # prompt, "Prediction", ":", Yes, ..., later yes/no tokens in reasoning
            [-100, 5, 6, 8, 9, -100, -100, -100],  # No, then padding
        ]
    )
    w = answer_token_weights(labels, yes, no, 10.0)
    assert w.tolist() == [[0, 0, 1, 1, 10, 1, 1, 1], [0, 1, 1, 10, 1, 0, 0, 0]]


def test_weighted_loss_matches_a_hand_computation():
    import torch

    labels = torch.tensor([[-100, 5, 7, 9], [-100, -100, 5, 8]])
    log_probs = torch.tensor([[0.0, -1.0, -2.0, -0.5], [0.0, 0.0, -1.5, -3.0]])
    plain = weighted_completion_loss(log_probs, labels, 7, 8, 1.0)
    assert plain.item() == pytest.approx((1.0 + 2.0 + 0.5 + 1.5 + 3.0) / 5)
    weighted = weighted_completion_loss(log_probs, labels, 7, 8, 4.0)
    assert weighted.item() == pytest.approx((1.0 + 4 * 2.0 + 0.5 + 1.5 + 4 * 3.0) / 5)
    assert weighted_completion_loss(log_probs, labels, 7, 8, 4.0, num_tokens=10).item() == pytest.approx(
        (1.0 + 8.0 + 0.5 + 1.5 + 12.0) / 10
    )
