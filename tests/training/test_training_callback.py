"""The validation-AUC callback: best adapter, early stopping, state for resume."""

from __future__ import annotations

from reasoningrec.training.callback import ValidationAUCCallback


class _Control:
    should_training_stop = False


def test_early_stopping_after_patience_epochs_without_improvement():
    script = iter([0.60, 0.70, 0.65, 0.70, 0.69, 0.90])
    saved, scored = [], iter([[0.1 * epoch, 0.2] for epoch in range(1, 7)])
    callback = ValidationAUCCallback(
        scorer=lambda model: next(scored), labels=[0, 1], patience=3, save_best=lambda m, e, a: saved.append((e, a))
    )
    import reasoningrec.metrics as metrics

    original = metrics.auc
    metrics.auc = lambda labels, scores: next(script)
    try:
        control = _Control()
        for epoch in range(1, 7):
            callback.end_epoch(None, epoch, control)
            if control.should_training_stop:
                break
    finally:
        metrics.auc = original
    assert epoch == 5 and callback.stopped_early  # 0.65, 0.70 (a tie), 0.69: three without improvement
    assert saved == [(1, 0.60), (2, 0.70)] and callback.best_epoch == 2
    assert callback.best_scores == [0.2, 0.2]  # the scores of the saved (best) epoch, not of the last
    state = callback.state_dict()
    restored = ValidationAUCCallback(lambda m: None, [0, 1], 3, lambda *a: None)
    restored.load_state_dict(state)
    assert restored.history == callback.history and restored.best_auc == 0.70
    assert restored.best_scores == [0.2, 0.2]
    older = {key: value for key, value in state.items() if key != "best_scores"}
    restored.load_state_dict(older)  # a checkpoint of an older version: no scores kept
    assert restored.best_scores is None
