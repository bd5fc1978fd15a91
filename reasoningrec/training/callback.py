"""Trainer callbacks: after each epoch the validation AUC, the best adapter kept, early stopping (state
survives resume); progress per optimizer step (:class:`TrainingProgressCallback`).

With several processes (:mod:`reasoningrec.training.distributed`) every process scores its shard of
the validation prompts and receives all the scores; rank 0 computes the AUC and the new state
(best epoch, epochs without improvement, history) and broadcasts it, so every process stops at the
same epoch; rank 0 alone saves the adapter and the state file, the others wait for it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from reasoningrec.io import write_json
from reasoningrec.training.distributed import Comm, Single

log = logging.getLogger(__name__)

CALLBACK_STATE = "reasoningrec_callback.json"  # written into each Trainer checkpoint


def _callback_base():
    from transformers import TrainerCallback

    return TrainerCallback


class ValidationAUCCallback(_callback_base()):
    """After each epoch: P(Yes) on the validation prompts -> AUC; save the adapter when it improves
    (and keep its scores: the experiment need not score the validation records again);
    stop after ``patience`` epochs without improvement. ``scorer(model) -> scores`` and
    ``save_best(model, epoch, auc)`` are injected so the logic is testable without a Trainer.
    State survives resume through a JSON file written into each checkpoint. ``comm``: the
    collectives of a launch on several processes (``scorer`` then returns the gathered scores of
    all prompts on every process); default one process."""

    def __init__(
        self,
        scorer: Callable[[Any], np.ndarray],
        labels: Sequence[int],
        patience: int,
        save_best: Callable[[Any, int, float], None],
        comm: Comm | None = None,
    ):
        self.scorer, self.labels, self.patience, self.save_best = scorer, list(labels), patience, save_best
        self.comm: Comm = comm or Single()
        self.best_auc: float | None = None
        self.best_epoch = 0
        self.best_scores: list[float] | None = None  # the validation P(Yes) of the best epoch
        self.bad_epochs = 0
        self.history: list[dict] = []
        self._losses: list[float] = []

    # Trainer hooks -------------------------------------------------------------------------
    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self._losses.append(float(logs["loss"]))

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        epoch = len(self.history) + 1
        self.end_epoch(model, epoch, control)
        return control

    def on_save(self, args, state, control, **kwargs):
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if self.comm.rank == 0 and folder.is_dir():
            write_json(folder / CALLBACK_STATE, self.state_dict())
        return control

    # Logic ----------------------------------------------------------------------------------
    def end_epoch(self, model, epoch: int, control) -> float:
        started = time.perf_counter()
        scores = self.scorer(model)  # every process: the gathered scores of all validation prompts
        train_loss = float(np.mean(self._losses)) if self._losses else None
        self._losses = []
        state = self._decide(epoch, scores, train_loss) if self.comm.rank == 0 else None
        self.load_state_dict(self.comm.broadcast(state))
        last = self.history[-1]
        if self.best_epoch == epoch:  # improved, or epoch 1: always a first adapter, even with nan AUC
            if self.comm.rank == 0:
                self.save_best(model, epoch, last["valid_auc"])
            self.comm.barrier()
        if self.comm.rank == 0:
            log.info(
                "epoch %d: train loss %s, valid AUC %.4f%s (scored in %.1f s)",
                epoch,
                "n/a" if train_loss is None else f"{train_loss:.4f}",
                last["valid_auc"],
                " (best)" if last["improved"] else f", {self.bad_epochs} without improvement",
                time.perf_counter() - started,
            )
            if self.stopped_early:
                log.info("early stopping: %d epochs without a better validation AUC", self.bad_epochs)
        if self.stopped_early:
            control.should_training_stop = True
        return last["valid_auc"]

    def _decide(self, epoch: int, scores, train_loss: float | None) -> dict:
        """The state after ``epoch``: AUC, best epoch, epochs without improvement, history."""
        from reasoningrec.metrics import auc

        valid_auc = auc(self.labels, scores)
        improved = not math.isnan(valid_auc) and (self.best_auc is None or valid_auc > self.best_auc)
        if improved or self.best_auc is None:
            self.best_auc, self.best_epoch, self.bad_epochs = valid_auc, epoch, 0
            self.best_scores = [float(score) for score in scores]
        else:
            self.bad_epochs += 1
        self.history.append(
            {"epoch": epoch, "train_loss": train_loss, "valid_auc": valid_auc, "improved": bool(improved)}
        )
        return self.state_dict()

    def state_dict(self) -> dict:
        return {
            "best_auc": self.best_auc,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "history": self.history,
            "best_scores": self.best_scores,
        }

    def load_state_dict(self, state: dict) -> None:
        self.best_auc, self.best_epoch = state["best_auc"], state["best_epoch"]
        self.bad_epochs, self.history = state["bad_epochs"], list(state["history"])
        self.best_scores = state.get("best_scores")  # absent in checkpoints of older versions

    @property
    def stopped_early(self) -> bool:
        return self.bad_epochs >= self.patience


class TrainingProgressCallback(_callback_base()):
    """Training progress per optimizer step (:mod:`reasoningrec.progress`): count, rate and ETA over
    all epochs, the latest loss and the epoch as postfix. A resumed run starts at its checkpoint's step.
    Transformers' own bar stays off (``disable_tqdm``) so there is one display."""

    def __init__(self, desc: str | None = "train"):
        self.desc = desc
        self.bar = None

    def on_train_begin(self, args, state, control, **kwargs):
        from reasoningrec.progress import progress

        self.bar = progress(state.max_steps, self.desc, "steps", initial=state.global_step)
        return control

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.count)
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        if self.bar is not None and logs and "loss" in logs:
            self.bar.set_postfix(loss=float(logs["loss"]), epoch=f"{state.epoch or 0:.2f}")
        return control

    def on_train_end(self, args, state, control, **kwargs):
        self.close()
        return control

    def close(self, failed: bool = False) -> None:
        """End the display (also after a failed ``train()``, which never calls ``on_train_end``)."""
        if self.bar is not None:
            self.bar.close(failed=failed)
            self.bar = None
