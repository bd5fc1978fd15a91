"""A training run on the tiny model: it learns a planted signal, resumes, and starts over on other settings."""

from __future__ import annotations

import numpy as np
import pytest
from training_data import planted

from reasoningrec.config import TrainConfig
from reasoningrec.training.adapter import check_adapter_not_empty
from reasoningrec.training.train import train_adapter


def test_training_learns_a_planted_signal_and_resumes(tiny_model_dir, tmp_path):
    from reasoningrec.chat import render_chat
    from reasoningrec.experiment import reusable_valid_scores
    from reasoningrec.io import read_json
    from reasoningrec.models import load_adapter, model_precision
    from reasoningrec.scoring import score_prompts

    cfg = TrainConfig(
        epochs=4,
        learning_rate=3e-2,
        batch_size=8,
        patience=4,
        answer_loss_weight=5.0,
        target_modules=["q_proj", "v_proj", "o_proj"],
    )
    valid = planted(8)
    result = train_adapter(
        str(tiny_model_dir),
        planted(32),
        valid,
        cfg,
        tmp_path / "run",
        max_length=128,
        seed=0,
        meta={"dataset": "planted", "method": "tallrec", "k_shots": 32},
        keep_checkpoints=True,
    )
    losses = [h["train_loss"] for h in result.history]
    assert len(losses) == 4 and losses[-1] < losses[0]
    assert result.best_valid_auc == 1.0
    assert check_adapter_not_empty(result.adapter_dir) > 0
    meta = read_json(result.adapter_dir / "reasoningrec.json")
    assert meta["best_epoch"] == result.best_epoch and meta["k_shots"] == 32 and meta["method"] == "tallrec"
    model, tok, _ = load_adapter(result.adapter_dir)  # the device and precision an experiment scores with
    scores = score_prompts(model, tok, [render_chat(tok, p) for p in valid.prompt_text])
    assert scores[valid.label == 1].min() > scores[valid.label == 0].max()
    # The best epoch's validation scores, kept for the experiment, are the numbers it would score.
    assert reusable_valid_scores(result, model_precision(model), 8, len(valid))
    assert scores.tolist() == result.valid_scores
    # A second call finds the finished checkpoint and does not train again.
    again = train_adapter(
        str(tiny_model_dir), planted(32), valid, cfg, tmp_path / "run", max_length=128, seed=0, keep_checkpoints=True
    )
    assert again.history == result.history and again.epochs_run == 4
    assert again.valid_scores == result.valid_scores  # kept in the checkpoint's callback state
    # Other settings do not resume those checkpoints: they are moved aside and training starts over.
    other = cfg.model_copy(update={"epochs": 1})
    fresh = train_adapter(
        str(tiny_model_dir), planted(32), valid, other, tmp_path / "run", max_length=128, seed=0, keep_checkpoints=True
    )
    assert fresh.epochs_run == 1 and len(fresh.history) == 1
    (parked,) = (tmp_path / "run" / ".superseded").iterdir()
    assert parked.name.startswith("checkpoints-") and any(parked.glob("checkpoint-*"))


@pytest.mark.slow
def test_smollm2_end_to_end(tmp_path):
    """Real SmolLM2-135M-Instruct: two epochs on a few records, then scores and an explanation."""
    from reasoningrec.chat import render_chat
    from reasoningrec.models import load_adapter
    from reasoningrec.scoring import generate_explanations, score_prompts

    cfg = TrainConfig(epochs=2, learning_rate=1e-3, batch_size=4, patience=2, answer_loss_weight=2.0)
    result = train_adapter("embedded", planted(8, reasoning=True), planted(4), cfg, tmp_path, max_length=256)
    assert len(result.history) == 2 and not np.isnan(result.best_valid_auc)
    model, tok, meta = load_adapter(result.adapter_dir)
    assert meta["base_model"] == "embedded"
    prompts = [render_chat(tok, p) for p in planted(4).prompt_text]
    scores = score_prompts(model, tok, prompts)
    assert ((scores > 0) & (scores < 1)).all()
    assert len(generate_explanations(model, tok, prompts[:2], max_new_tokens=16)) == 2
