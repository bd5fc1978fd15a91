"""SASRec and Caser: they learn planted signals, fall to chance on shuffled labels, and run end to end."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from baseline_data import beauty_work, leave_last_out, planted  # noqa: F401  (beauty_work is a fixture)
from mlflow_support import migrated_store

from reasoningrec.baselines import common, run_baselines
from reasoningrec.baselines.stage import build_model
from reasoningrec.config import parse_params
from reasoningrec.metrics import auc
from reasoningrec.predictions import COLUMNS


@pytest.fixture(autouse=True)
def one_thread():
    # Two shared cores: a second intra-op thread only adds contention (measured ~10x slower).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def small_params(**baselines):
    return parse_params(
        {
            "datasets": {"beauty": {"source": "paper", "path": "reasoningrec-paper/beauty", "history_len": 5}},
            "baselines": {
                "hidden": 32,
                "epochs": 6,
                "patience": 2,
                "learning_rate": 3e-3,
                "batch_size": 128,
                "dropout": 0.1,
                **baselines,
            },
        }
    )


def fit_on(method: str, interactions: pd.DataFrame, params, seed: int = 0):
    """Train on the training sequences; return (test AUC, test P(like)) on the test samples."""
    samples = leave_last_out(interactions, 5)
    seqs = common.training_sequences(interactions, samples, 3.0)
    index = common.ItemIndex.from_sequences(seqs)
    train = common.encode_training(seqs, index, 5)
    valid = common.encode_samples(samples[samples.split == "valid"], index, 5)
    test = common.encode_samples(samples[samples.split == "test"], index, 5)
    common.set_seed(seed)
    model = build_model(method, params, index.size, 5)
    cfg = params.baselines
    common.fit(
        model,
        train,
        valid,
        common.FitSettings(cfg.epochs, cfg.patience, cfg.learning_rate, cfg.batch_size, cfg.weight_decay, seed),
    )
    p = common.predict(model, test)
    return auc(test.label, p), p


@pytest.mark.parametrize(("method", "signal"), [("sasrec", "alternate"), ("caser", "alternate"), ("caser", "even")])
def test_learns_a_planted_signal(method, signal):
    # "alternate": like iff the previous item was disliked, so only the order of the history tells.
    score, _ = fit_on(method, planted(signal, users=200, length=12), small_params())
    assert score > 0.9


@pytest.mark.parametrize("method", ["sasrec", "caser"])
def test_shuffled_labels_give_chance(method):
    score, _ = fit_on(method, planted("shuffled", users=400, length=10), small_params(epochs=3))
    assert abs(score - 0.5) < 0.1


def test_same_seed_same_predictions():
    data = planted("even", users=60, length=8)
    _, first = fit_on("caser", data, small_params(epochs=1), seed=3)
    _, again = fit_on("caser", data, small_params(epochs=1), seed=3)
    _, other = fit_on("caser", data, small_params(epochs=1), seed=4)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_one_epoch_on_real_beauty_logs_contract_runs(beauty_work, tmp_path, tmp_path_factory, monkeypatch):  # noqa: F811
    from mlflow import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    template = tmp_path_factory.getbasetemp() / "mlflow-template" / "mlflow.db"
    if not template.is_file():
        migrated_store(template.parent)  # one migrated store per session, shared with test_report
    shutil.copyfile(template, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    params = parse_params(
        {
            **small_params(epochs=1).model_dump(by_alias=True, mode="json"),
            "tracking": {"tracking_uri": uri, "artifact_location": str(tmp_path / "artifacts"), "experiment": "t"},
        }
    )
    summary = run_baselines(params, "beauty", out_dir=beauty_work, seeds=[0])

    assert json.loads((beauty_work / "baselines" / "baselines.json").read_text()) == summary.to_json()
    assert set(summary.methods) == {"sasrec", "caser", "user-like-rate", "item-like-rate"}
    assert summary.training_examples > 500  # every position before the valid target, not K-shot
    # The user like-rate is a strong signal on real data: the bar the learned models must clear.
    assert summary.methods["user-like-rate"]["seeds"]["0"]["test_auc"] > 0.65
    for name in ("sasrec-seed0", "caser-seed0", "user-like-rate", "item-like-rate"):
        frame = pd.read_parquet(beauty_work / "baselines" / f"{name}.parquet")
        assert tuple(frame.columns) == COLUMNS
        assert set(frame.split) == {"valid", "test"} and frame.p_yes.between(0, 1).all()

    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("t").experiment_id])
    tags = sorted((r.data.tags["method"], r.data.tags["k_shots"], r.data.tags["seed"]) for r in runs)
    assert tags == [
        ("caser", "all", "0"),
        ("item-like-rate", "0", "0"),
        ("sasrec", "all", "0"),
        ("user-like-rate", "0", "0"),
    ]
    for run in runs:
        assert {"dataset", "git_commit", "hardware", "command"} <= set(run.data.tags)
        assert {"valid_auc", "test_auc", "test_accuracy", "test_log_loss", "test_ece"} <= set(run.data.metrics)
        assert run.data.metrics["test_auc"] == pytest.approx(
            summary.methods[run.data.tags["method"]]["seeds"]["0"]["test_auc"]
        )
    sasrec = next(r for r in runs if r.data.tags["method"] == "sasrec")
    assert [m.step for m in client.get_metric_history(sasrec.info.run_id, "epoch_valid_auc")] == [1]
