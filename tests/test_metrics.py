"""Metrics on exact boundary cases, calibration, bootstrap, BERTScore (embedded MiniLM) and curve files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from reasoningrec import metrics
from reasoningrec.metrics import MetricError

LABELS = [0, 0, 1, 1, 0, 1]
PERFECT = [0.1, 0.2, 0.8, 0.9, 0.3, 0.7]


def test_auc_boundaries():
    assert metrics.auc(LABELS, PERFECT) == 1.0
    assert metrics.auc(LABELS, [1 - s for s in PERFECT]) == 0.0
    assert metrics.auc(LABELS, [0.5] * 6) == 0.5


def test_auc_single_class_is_nan_and_bad_input_raises():
    assert math.isnan(metrics.auc([1, 1, 1], [0.2, 0.5, 0.9]))
    with pytest.raises(MetricError, match="labels but"):
        metrics.auc([0, 1], [0.5])
    with pytest.raises(MetricError, match="0/1"):
        metrics.auc([0, 2], [0.5, 0.5])
    with pytest.raises(MetricError, match="probabilities"):
        metrics.auc([0, 1], [0.5, 1.5])
    with pytest.raises(MetricError, match="no labels"):
        metrics.auc([], [])


def test_accuracy_and_log_loss_exact_values():
    assert metrics.accuracy(LABELS, PERFECT) == 1.0
    assert metrics.accuracy([1, 0], [0.5, 0.5]) == 0.5  # 0.5 counts as Yes
    assert metrics.log_loss([1, 0], [0.5, 0.5]) == pytest.approx(math.log(2))
    assert metrics.log_loss([1, 0], [0.8, 0.4]) == pytest.approx(-(math.log(0.8) + math.log(0.6)) / 2)
    assert metrics.log_loss([1], [0.0]) == pytest.approx(-math.log(1e-7))  # clipped, finite


def test_ece_exact_cases():
    # Constant 0.5 on a balanced set is perfectly calibrated.
    assert metrics.ece([0, 1, 0, 1], [0.5] * 4) == pytest.approx(0.0)
    # Confident and always right: |1 - 0.95| in the top bin, |0 - 0.05| in the bottom bin.
    assert metrics.ece([1, 0], [0.95, 0.05]) == pytest.approx(0.05)
    # Confident and always wrong.
    assert metrics.ece([0, 1], [0.95, 0.05]) == pytest.approx(0.95)
    bins = metrics.calibration_bins([1, 0, 1], [1.0, 0.0, 0.55])
    assert [b["count"] for b in bins if b["count"]] == [1, 1, 1]
    assert bins[9]["count"] == 1  # 1.0 falls in the last (closed) bin


def test_parse_failure_rate():
    assert metrics.parse_failure_rate([1, None, 0, None]) == 0.5
    with pytest.raises(MetricError):
        metrics.parse_failure_rate([])


def test_bootstrap_ci_brackets_the_auc_and_is_reproducible():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    s = np.clip(0.5 + 0.3 * (y - 0.5) + rng.normal(0, 0.25, 200), 0, 1)
    point = metrics.auc(y, s)
    lo, hi = metrics.bootstrap_auc_ci(y, s, n=300, seed=7)
    assert lo < point < hi and hi - lo < 0.25
    assert metrics.bootstrap_auc_ci(y, s, n=300, seed=7) == (lo, hi)
    assert all(math.isnan(v) for v in metrics.bootstrap_auc_ci([1, 1], [0.1, 0.2], n=10))


def test_classification_metrics_bundle():
    out = metrics.classification_metrics(LABELS, PERFECT)
    assert out["auc"] == 1.0 and out["accuracy"] == 1.0 and out["n"] == 6 and out["n_positive"] == 3


def test_write_curves(tmp_path):
    paths = metrics.write_curves(LABELS, PERFECT, tmp_path, prefix="test_")
    roc = json.loads((tmp_path / "test_roc.json").read_text())["roc"]
    assert roc[0]["fpr"] == 0.0 and roc[-1]["tpr"] == 1.0
    calibration = json.loads((tmp_path / "test_calibration.json").read_text())["calibration"]
    assert len(calibration) == 10 and sum(b["count"] for b in calibration) == 6
    for key in ("roc_png", "calibration_png"):
        assert Path(paths[key]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "test_roc.csv").read_text().startswith("fpr,tpr,threshold")


def test_bertscore_embedded_minilm():
    reference = "The user will like this moisturiser because they prefer gentle, unscented creams."
    result = metrics.bertscore_f1(
        [
            reference,
            "The user is likely to enjoy this moisturiser since they favour mild creams without scent.",
            "Toy Story is an animated film about toys that come alive when nobody is watching.",
        ],
        [reference] * 3,
        model="embedded",
        num_layers=6,
    )
    same, paraphrase, unrelated = result.per_item
    assert same == pytest.approx(1.0, abs=1e-4)
    assert paraphrase > unrelated
    assert "MiniLM" in result.backbone and result.num_layers == 6
    with pytest.raises(MetricError):
        metrics.bertscore_f1(["a"], ["b", "c"])


def test_bertscore_goes_in_chunks_with_progress_and_the_same_scores(monkeypatch, caplog):
    """Many pairs in chunks of batch_size x BERTSCORE_CHUNK_BATCHES give the per-pair F1 of one call."""
    import logging

    words = ["gentle", "unscented", "cream", "value", "fragrance", "dry", "hair", "moisturiser"]
    candidates = [" ".join(words[i % 8 : i % 8 + 3] + [str(i)]) for i in range(37)]
    references = ["the user prefers gentle unscented creams at a good price"] * 37
    whole = metrics.bertscore_f1(candidates, references, batch_size=64)
    caplog.set_level(logging.INFO, logger="reasoningrec.progress")
    monkeypatch.setenv("REASONINGREC_PROGRESS", "never")
    chunked = metrics.bertscore_f1(candidates, references, batch_size=4, progress="bertscore")  # 3 chunks
    np.testing.assert_allclose(chunked.per_item, whole.per_item, atol=1e-5)
    lines = [r.getMessage() for r in caplog.records if r.name == "reasoningrec.progress"]
    assert lines[0] == "bertscore: 37 pairs" and lines[-1].startswith("bertscore: 37 pairs in ") and len(lines) == 2


def test_resampled_aucs_equal_sklearn_on_every_resample():
    from sklearn.metrics import roc_auc_score

    from reasoningrec.metrics import resampled_aucs

    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 80)
    scores = np.round(rng.random(80), 1)  # many ties
    picks = rng.integers(0, 80, (25, 80))
    got = resampled_aucs(labels, scores, picks)
    want = [roc_auc_score(labels[p], scores[p]) if labels[p].min() != labels[p].max() else np.nan for p in picks]
    np.testing.assert_allclose(got, want)


def test_paired_difference_sees_what_overlapping_intervals_miss():
    from reasoningrec.metrics import bootstrap_auc_ci, paired_auc_difference_ci

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 400)
    noise = rng.random(400)
    weak, strong = 0.2 * labels + noise, 0.26 * labels + noise  # same errors, a slightly stronger signal
    weak, strong = weak / weak.max(), strong / strong.max()
    lo_w, hi_w = bootstrap_auc_ci(labels, weak, n=300)
    lo_s, hi_s = bootstrap_auc_ci(labels, strong, n=300)
    assert lo_s < hi_w  # the separate intervals overlap ...
    lo, hi = paired_auc_difference_ci(labels, [strong], [weak], n=300)
    assert 0 < lo < hi  # ... but the paired difference is clearly positive
    lo, hi = paired_auc_difference_ci(labels, [weak, weak], [weak], n=300)
    assert lo == hi == 0.0
