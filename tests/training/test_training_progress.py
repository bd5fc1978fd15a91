"""Training progress: one unit per optimizer step over all epochs, the loss beside it, resume-aware."""

from __future__ import annotations

import logging
from types import SimpleNamespace

from training_data import planted

from reasoningrec.config import TrainConfig
from reasoningrec.training.callback import TrainingProgressCallback
from reasoningrec.training.train import train_adapter


def progress_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "reasoningrec.progress"]


def test_a_real_tiny_training_reports_every_optimizer_step(tiny_model_dir, tmp_path, monkeypatch, caplog):
    """8 records, batch 2, 2 accumulation steps, 2 epochs: 2 optimizer steps an epoch, 4 in all.
    With a tiny log interval every step writes its line; the end line has the count and the loss."""
    monkeypatch.setenv("REASONINGREC_PROGRESS", "never")
    monkeypatch.setenv("REASONINGREC_PROGRESS_INTERVAL", "0.000001")
    caplog.set_level(logging.INFO, logger="reasoningrec.progress")
    cfg = TrainConfig(
        epochs=2, batch_size=2, grad_accum=2, learning_rate=1e-2, patience=2, target_modules=["q_proj", "v_proj"]
    )
    result = train_adapter(str(tiny_model_dir), planted(8), planted(4), cfg, tmp_path / "run", max_length=128, seed=0)
    assert result.epochs_run == 2
    lines = [line for line in progress_lines(caplog) if line.startswith("train:")]
    assert lines[0] == "train: 4 steps"
    assert [line.split(" (")[0] for line in lines[1:-1]] == ["train: 1/4 steps", "train: 2/4 steps", "train: 3/4 steps"]
    assert lines[-1].startswith("train: 4 steps in ") and ", loss " in lines[-1] and ", epoch 2.00" in lines[-1]
    # Validation scoring between epochs runs inside the training display: no lines of its own.
    assert all(line.startswith("train:") for line in progress_lines(caplog))


def test_a_resumed_run_counts_from_its_checkpoint_step(monkeypatch, caplog):
    monkeypatch.setenv("REASONINGREC_PROGRESS", "never")
    caplog.set_level(logging.INFO, logger="reasoningrec.progress")
    shown = TrainingProgressCallback()
    state = SimpleNamespace(max_steps=10, global_step=6, epoch=3.0)
    shown.on_train_begin(None, state, None)
    state.global_step = 8
    shown.on_step_end(None, state, None)
    assert shown.bar.count == 8 and shown.bar.initial == 6
    shown.on_train_end(None, state, None)
    assert shown.bar is None
    start, end = progress_lines(caplog)
    assert start == "train: 6/10 steps" and end.startswith("train: 8/10 steps in ")
