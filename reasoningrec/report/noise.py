"""Is a difference real? Paired bootstrap of the AUC difference on shared test users, best rows."""

from __future__ import annotations

import math
from collections.abc import Iterable

from reasoningrec.methods import names
from reasoningrec.report.cells import Cell, base_method

HEURISTICS = names(family="heuristic")

PAIRED_BOOTSTRAP = 1000
MIN_SHARED_USERS = 20


def paired_difference_ci(a: Cell, b: Cell, n: int = PAIRED_BOOTSTRAP) -> tuple[float, float] | None:
    """Paired bootstrap 95% interval of mean test AUC(a) - mean test AUC(b) over the test users every
    run of both cells scored with the same label; ``None`` when a run has no predictions or fewer
    than :data:`MIN_SHARED_USERS` users are shared."""
    import numpy as np

    from reasoningrec.metrics import paired_auc_difference_ci

    frames = [r.test_scores for r in (*a.runs, *b.runs)]
    if not frames or any(f is None for f in frames):
        return None
    users = frames[0].index
    for frame in frames[1:]:
        users = users.intersection(frame.index)
    labels = frames[0]["label"].reindex(users).to_numpy()
    same_label = np.logical_and.reduce([f["label"].reindex(users).to_numpy() == labels for f in frames])
    users, labels = users[same_label], labels[same_label]
    if len(users) < MIN_SHARED_USERS:
        return None

    def scores(cell: Cell) -> list:
        return [r.test_scores["p_yes"].reindex(users).to_numpy() for r in cell.runs]

    lo, hi = paired_auc_difference_ci(labels, scores(a), scores(b), n=n)
    return None if math.isnan(lo) else (lo, hi)


def within_noise(a: Cell, b: Cell) -> bool | None:
    """Whether the test AUC of two cells differs by no more than the noise.

    With predictions for every run: the paired bootstrap interval of the difference
    (:func:`paired_difference_ci`) contains 0. Without: the per-run bootstrap intervals overlap, or
    |mean difference| < 2 × the larger seed std. ``None`` when no rule applies (one seed each and no
    predictions): the report then says the noise is unknown rather than calling a difference real.
    """
    ma, mb = a.mean(), b.mean()
    if ma is None or mb is None:
        return None
    paired = paired_difference_ci(a, b)
    if paired is not None:
        return paired[0] <= 0 <= paired[1]
    ca, cb = a.ci(), b.ci()
    stds = [s for s in (a.std(), b.std()) if s is not None]
    if ca and cb and ca[0] <= cb[1] and cb[0] <= ca[1]:
        return True
    if stds and abs(ma - mb) < 2 * max(stds):
        return True
    return False if (ca and cb) or stds else None


def best_row(cells: Iterable[Cell], methods: Iterable[str]) -> Cell | None:
    """The cell of highest mean test AUC among the rows of ``methods`` (any K, any loss setting)."""
    wanted = set(methods)
    return max(
        (c for c in cells if base_method(c.method) in wanted and c.mean() is not None),
        key=lambda c: c.mean(),
        default=None,
    )


def best_heuristic(cells: dict[tuple, Cell], dataset: str) -> Cell | None:
    return best_row((c for c in cells.values() if c.dataset == dataset), HEURISTICS)
