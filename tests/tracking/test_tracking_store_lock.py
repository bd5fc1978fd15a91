"""The cross-process lock of a local SQLite tracking store (the grid's workers log at the same time)."""

from __future__ import annotations

import multiprocessing

NO_PIPELINE = {"pipeline": {"datasets": []}}  # settings without datasets


def test_store_lock_is_a_file_lock_for_local_sqlite_only(tmp_path, monkeypatch):
    from reasoningrec.config import parse_params
    from reasoningrec.tracking import store_lock

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    local = parse_params({**NO_PIPELINE, "tracking": {"tracking_uri": f"sqlite:///{tmp_path}/m.db"}})
    lock = store_lock(local)
    assert lock.lock_file == f"{tmp_path}/m.db.lock" and store_lock(local) is lock
    with lock, lock:  # reentrant within a thread
        assert lock.is_locked
    remote = parse_params({**NO_PIPELINE, "tracking": {"tracking_uri": "http://127.0.0.1:5000"}})
    assert not hasattr(store_lock(remote), "lock_file")


def _log_runs(uri: str, artifacts: str, worker: int) -> list[str]:
    from reasoningrec.config import parse_params
    from reasoningrec.tracking import log_run

    params = parse_params({**NO_PIPELINE, "tracking": {"tracking_uri": uri, "artifact_location": artifacts}})
    return [
        log_run(
            params,
            dataset="beauty",
            method="tallrec",
            k_shots=8,
            seed=10 * worker + i,
            settings={"train": {"lora_r": 8}},
            metrics={"test_auc": 0.5 + i / 10},
            epoch_history=[{"epoch": 1, "train_loss": 1.0}],
            repo_root=artifacts,
        )
        for i in range(3)
    ]


def test_concurrent_processes_log_to_one_sqlite_store(tmp_path, monkeypatch):
    from reasoningrec.config import parse_params
    from reasoningrec.tracking import experiment_id, find_runs, get_client

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri, artifacts = f"sqlite:///{tmp_path}/mlflow.db", str(tmp_path / "art")
    params = parse_params({**NO_PIPELINE, "tracking": {"tracking_uri": uri, "artifact_location": artifacts}})
    client = get_client(params)
    experiment_id(client, params)
    context = multiprocessing.get_context("spawn")
    with context.Pool(2) as pool:  # each process imports mlflow (seconds): two are enough to collide
        run_ids = pool.starmap(_log_runs, [(uri, artifacts, w) for w in range(2)])
    assert len({r for ids in run_ids for r in ids}) == 6
    runs = find_runs(client, params, dataset="beauty", method="tallrec")
    assert sorted(int(r.data.tags["seed"]) for r in runs) == [0, 1, 2, 10, 11, 12]
    assert all(r.info.status == "FINISHED" for r in runs)
