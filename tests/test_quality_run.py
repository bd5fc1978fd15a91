"""The quality-run harness (benchmarks/quality_run.py): job plan, order, resume, settings, the
cross-process MLflow store lock, and one end-to-end mini run on the real Beauty data."""

from __future__ import annotations

import json
import multiprocessing
import sys
import time
from pathlib import Path

import pytest
from conftest import data_file

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "benchmarks"))  # spawned children inherit sys.path

import quality_run as qr  # noqa: E402

KS, SEEDS = [64, 128, 256], [0, 1, 2]


def _plan(datasets=("beauty", "ml100k"), methods=qr.ALL_METHODS):
    return qr.plan_jobs({d: list(methods) for d in datasets}, KS, SEEDS)


# --------------------------------------------------------------------------- plan and order


def test_plan_has_every_combination_once_and_zero_shot_once():
    jobs = _plan()
    ids = [j.job_id for j in jobs]
    assert len(ids) == len(set(ids))
    # per dataset: 5 fine-tuned methods x 3 K x 3 seeds + 2 zero-shot (K=0, first seed) + 1 baselines job
    assert len(jobs) == 2 * (5 * 3 * 3 + 2 + 1)
    zero = [j for j in jobs if j.method in qr.ZERO_SHOT]
    assert {(j.k_shots, j.seed) for j in zero} == {(0, 0)}
    baselines = [j for j in jobs if j.method == qr.BASELINES]
    assert [j.baselines for j in baselines] == [qr.BASELINE_METHODS] * 2
    assert all(j.seeds == (0, 1, 2) for j in baselines)


def test_order_largest_k_seed0_first_then_other_seeds_then_smaller_k():
    jobs = _plan()
    tiers = [qr.priority(j, KS, SEEDS) for j in jobs]
    assert tiers == sorted(tiers)
    first_tier = [j for j in jobs if qr.priority(j, KS, SEEDS) == (0, 0)]
    # every method of every dataset has its K=256 seed-0 (or K-free) job in the first tier
    assert {(j.dataset, j.method) for j in first_tier} == {
        (d, m) for d in ("beauty", "ml100k") for m in (*qr.LLM_METHODS, qr.BASELINES)
    }
    assert all(j.k_shots == 256 and j.seed == 0 for j in first_tier if j.method not in (*qr.ZERO_SHOT, qr.BASELINES))
    # the baselines (CPU) start first; then the most important method on every dataset
    assert [j.method for j in jobs[:2]] == [qr.BASELINES, qr.BASELINES]
    assert [(j.dataset, j.method) for j in jobs[2:4]] == [("beauty", "reasoningrec"), ("ml100k", "reasoningrec")]
    position = {j.job_id: i for i, j in enumerate(jobs)}
    assert position["beauty-label-only-k256-s2"] < position["beauty-reasoningrec-k128-s0"]
    assert position["beauty-reasoningrec-k128-s2"] < position["beauty-reasoningrec-k64-s0"]


def test_ml100k_without_texts_runs_only_methods_that_need_none():
    runnable, skipped = qr.runnable_methods(qr.ALL_METHODS, set())
    assert set(runnable) == {"tallrec", "zeroshot-vanilla", *qr.BASELINE_METHODS}
    assert set(skipped) == set(qr.LLM_METHODS) - {"tallrec", "zeroshot-vanilla"}
    runnable, skipped = qr.runnable_methods(qr.ALL_METHODS, {"descriptions", "profiles"})
    assert "label-only" in runnable and "reasoningrec" in skipped  # reasoning ground truth missing
    assert qr.runnable_methods(qr.ALL_METHODS, set(qr.SYNTHESISED)) == (list(qr.ALL_METHODS), [])


def test_plan_rejects_no_seeds():
    with pytest.raises(ValueError, match="seed"):
        qr.plan_jobs({"beauty": ["tallrec"]}, KS, [])


# --------------------------------------------------------------------------- resume


def test_done_jobs_are_skipped_and_partial_baselines_are_not(tmp_path):
    jobs = qr.plan_jobs({"beauty": ["tallrec", "zeroshot-vanilla", "sasrec", "user-like-rate"]}, [8], [0, 1])
    work = lambda dataset: tmp_path / dataset  # noqa: E731
    run = tmp_path / "beauty" / "runs" / "tallrec-k8-s1"
    run.mkdir(parents=True)
    (run / "train.json").write_text("{}")  # an interrupted run (no metrics.json) is not done
    pending, done = qr.split_done(jobs, lambda j: qr.is_done(j, work))
    assert done == []
    (run / "metrics.json").write_text("{}")
    (tmp_path / "beauty" / "runs" / "zeroshot-vanilla-k0-s0").mkdir(parents=True)
    (tmp_path / "beauty" / "runs" / "zeroshot-vanilla-k0-s0" / "metrics.json").write_text("{}")
    summary = {"methods": {"sasrec": {"seeds": {"0": {"run_id": "a"}}},
                           "user-like-rate": {"seeds": {"0": {"run_id": "b"}}}}}
    (tmp_path / "beauty" / "baselines").mkdir()
    (tmp_path / "beauty" / "baselines" / "baselines.json").write_text(json.dumps(summary))
    pending, done = qr.split_done(jobs, lambda j: qr.is_done(j, work))
    assert {j.job_id for j in done} == {"beauty-tallrec-k8-s1", "beauty-zeroshot-vanilla-k0-s0"}
    assert [j.job_id for j in pending] == ["beauty-baselines", "beauty-tallrec-k8-s0"]  # order kept
    summary["methods"]["sasrec"]["seeds"]["1"] = {"run_id": "c"}  # now every seed of sasrec is logged
    (tmp_path / "beauty" / "baselines" / "baselines.json").write_text(json.dumps(summary))
    assert qr.is_done(pending[0], work)


def test_pool_starts_nothing_after_the_deadline(tmp_path):
    jobs = qr.plan_jobs({"beauty": ["tallrec"]}, [8], [0, 1])
    outcome = qr.run_pool(jobs, {}, workers=2, log_dir=tmp_path, deadline=time.monotonic() - 1, hard_deadline=None)
    assert outcome.results == [] and outcome.not_started == [j.job_id for j in jobs]


# --------------------------------------------------------------------------- settings


def test_settings_put_outputs_under_work_dir_and_add_k(tmp_path):
    raw = qr.deep_merge({"records": {"k_shots": [64, 256], "seed": 1}, "train": {"epochs": 10}},
                       qr.parse_assignments(["train.epochs=1", "train.base_model=/m", "records.valid_size=20"]))
    assert raw["train"] == {"epochs": 1, "base_model": "/m"} and raw["records"]["seed"] == 1
    out = qr.run_settings(raw, work_dir=tmp_path, tracking_uri="sqlite:///x.db", ks=[8, 64])
    assert out["records"]["k_shots"] == [8, 64, 256]
    assert out["paths"]["work_dir"] == str(tmp_path.resolve() / "work")
    assert out["tracking"] == {"tracking_uri": "sqlite:///x.db", "artifact_location": str(tmp_path.resolve() / "mlartifacts")}
    with pytest.raises(SystemExit, match="KEY.PATH=VALUE"):
        qr.parse_assignments(["train.epochs"])


def test_quality_params_file_is_valid_and_uses_the_run_choices():
    from reasoningrec.config import read_params

    params = read_params(REPO_ROOT / "benchmarks" / "quality_params.yaml")
    assert params.train.epochs == 10 and params.train.learning_rate == pytest.approx(3e-4)
    assert params.train.precision == "auto" and params.evaluate.explain_limit == 100
    assert {"beauty", "fashion", "ml100k"} <= set(params.datasets)


# --------------------------------------------------------------------------- MLflow store lock


def test_store_lock_is_a_file_lock_for_local_sqlite_only(tmp_path, monkeypatch):
    from reasoningrec.config import parse_params
    from reasoningrec.tracking import store_lock

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    local = parse_params({"tracking": {"tracking_uri": f"sqlite:///{tmp_path}/m.db"}})
    lock = store_lock(local)
    assert lock.lock_file == f"{tmp_path}/m.db.lock" and store_lock(local) is lock
    with lock, lock:  # reentrant within a thread
        assert lock.is_locked
    remote = parse_params({"tracking": {"tracking_uri": "http://127.0.0.1:5000"}})
    assert not hasattr(store_lock(remote), "lock_file")


def _log_runs(uri: str, artifacts: str, worker: int) -> list[str]:
    from reasoningrec.config import parse_params
    from reasoningrec.tracking import log_run

    params = parse_params({"tracking": {"tracking_uri": uri, "artifact_location": artifacts}})
    return [
        log_run(params, dataset="beauty", method="tallrec", k_shots=8, seed=10 * worker + i,
                settings={"train": {"lora_r": 8}}, metrics={"test_auc": 0.5 + i / 10},
                epoch_history=[{"epoch": 1, "train_loss": 1.0}], repo_root=artifacts)
        for i in range(3)
    ]


def test_concurrent_processes_log_to_one_sqlite_store(tmp_path, monkeypatch):
    from reasoningrec.config import parse_params
    from reasoningrec.tracking import experiment_id, find_runs, get_client

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri, artifacts = f"sqlite:///{tmp_path}/mlflow.db", str(tmp_path / "art")
    params = parse_params({"tracking": {"tracking_uri": uri, "artifact_location": artifacts}})
    client = get_client(params)
    experiment_id(client, params)
    context = multiprocessing.get_context("spawn")
    with context.Pool(2) as pool:  # each process imports mlflow (seconds): two are enough to collide
        run_ids = pool.starmap(_log_runs, [(uri, artifacts, w) for w in range(2)])
    assert len({r for ids in run_ids for r in ids}) == 6
    runs = find_runs(client, params, dataset="beauty", method="tallrec")
    assert sorted(int(r.data.tags["seed"]) for r in runs) == [0, 1, 2, 10, 11, 12]
    assert all(r.info.status == "FINISHED" for r in runs)


# --------------------------------------------------------------------------- end to end


def test_mini_run_on_real_beauty_then_resume(shared_data, tmp_path, monkeypatch):
    """Stage 1 on the paper's Beauty data, the heuristic baseline in the pool, the report; a second
    call finds the job done and runs nothing."""
    data_file("reasoningrec-paper/beauty/ratings.csv")
    monkeypatch.setenv("REASONINGREC_DATA_DIR", str(shared_data))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    argv = ["--params", str(REPO_ROOT / "benchmarks" / "quality_params.yaml"), "--datasets", "beauty",
            "--methods", "user-like-rate", "--k", "8", "--seeds", "0", "--workers", "1",
            "--work-dir", str(tmp_path), "--skip-validation", "--report-bootstrap", "0"]
    assert qr.main(argv) == 0
    status = json.loads((tmp_path / "quality_run" / "status.json").read_text())
    assert status["summary"]["ok"] == 1 and status["summary"]["failed"] == []
    assert status["datasets"]["beauty"]["steps"].keys() == {"ingest", "prepare"}  # no texts needed
    assert status["jobs"]["beauty-baselines"]["metrics"]["user-like-rate"] > 0.5
    assert (tmp_path / "work" / "beauty" / "baselines" / "baselines.json").is_file()
    assert "user-like-rate" in (tmp_path / "results.md").read_text()
    imports = json.loads((tmp_path / "quality_run" / "imports.json").read_text())
    assert {"mlflow", "pandas", "torch", "pyarrow", "pydantic"} <= set(imports)
    assert not {"prefect", "great_expectations", "typer"} & set(imports)
    assert qr.main(argv) == 0  # resume: nothing left to run
    status = json.loads((tmp_path / "quality_run" / "status.json").read_text())
    assert status["summary"]["done_before"] == 1 and status["summary"]["ok"] == 0
    assert status["datasets"]["beauty"]["steps"] == {"ingest": "kept", "prepare": "kept"}
    assert json.loads((tmp_path / "quality_run" / "imports.json").read_text()).keys() == imports.keys()


def test_exported_state_leaves_out_adapters_and_resumes_elsewhere(tmp_path):
    work = tmp_path / "a"
    for relative in ("mlflow.db", "work/beauty/runs/tallrec-k8-s0/metrics.json",
                     "work/beauty/runs/tallrec-k8-s0/adapter/adapter_model.safetensors",
                     "work/beauty/runs/tallrec-k8-s0/checkpoints/checkpoint-1/x.bin",
                     "mlartifacts/r1/artifacts/predictions/predictions.parquet",
                     "mlartifacts/r1/artifacts/model/artifacts/adapter/a.bin",
                     "mlartifacts/r1/artifacts/plots/test_roc.png", "mlflow.db.lock"):
        (work / relative).parent.mkdir(parents=True, exist_ok=True)
        (work / relative).write_text(relative)
    archive = qr.export_state(work, tmp_path / "state.tgz")
    fresh = tmp_path / "b"
    qr.import_state(archive, fresh)
    kept = sorted(p.relative_to(fresh).as_posix() for p in fresh.rglob("*") if p.is_file())
    assert kept == ["mlartifacts/r1/artifacts/predictions/predictions.parquet", "mlflow.db",
                    "work/beauty/runs/tallrec-k8-s0/metrics.json"]
    job = qr.Job("beauty", "tallrec", 8, 0)
    assert qr.is_done(job, lambda d: fresh / "work" / d)

