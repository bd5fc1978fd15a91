"""Data-parallel training: batch split, shards, gathering in input order, rank-0 decisions and writes,
the launch; and one real training on two gloo processes of the tiny model."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from training_data import records_frame

from reasoningrec.errors import ConfigError
from reasoningrec.sharding import shard_positions
from reasoningrec.training import launch
from reasoningrec.training.adapter import TrainingError
from reasoningrec.training.callback import CALLBACK_STATE, ValidationAUCCallback
from reasoningrec.training.distributed import (
    Single,
    World,
    merge_shards,
    on_main,
    per_process_batch,
    sharded_scorer,
    world_from_env,
)


class ThreadComm:
    """The collectives between threads standing in for processes (one instance per rank)."""

    def __init__(self, rank: int, shared: dict):
        self.rank, self.size, self.shared = rank, shared["size"], shared
        self.barriers = 0

    def _sync(self) -> None:
        self.shared["barrier"].wait(timeout=10)

    def gather(self, obj):
        self.shared["slots"][self.rank] = obj
        self._sync()
        out = list(self.shared["slots"])
        self._sync()
        return out

    def broadcast(self, obj):
        if self.rank == 0:
            self.shared["box"] = obj
        self._sync()
        value = self.shared["box"]
        self._sync()
        return value

    def barrier(self) -> None:
        self.barriers += 1
        self._sync()


def run_ranks(size: int, work):
    """``work(comm)`` on ``size`` threads at once; their results by rank (an exception is re-raised)."""
    shared = {"size": size, "barrier": threading.Barrier(size), "slots": [None] * size, "box": None}
    comms = [ThreadComm(rank, shared) for rank in range(size)]
    results: list = [None] * size
    errors: list = []

    def target(rank: int) -> None:
        try:
            results[rank] = work(comms[rank])
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            errors.append(exc)
            shared["barrier"].abort()

    threads = [threading.Thread(target=target, args=(rank,)) for rank in range(size)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    if errors:
        raise errors[0]
    return results, comms


# --------------------------------------------------------------------------- pure helpers


@pytest.mark.parametrize(
    ("batch", "accum", "processes", "expected"),
    [
        (2, 4, 1, (2, 4)),
        (2, 4, 2, (2, 2)),
        (2, 4, 4, (2, 1)),
        (2, 4, 8, (1, 1)),
        (8, 1, 2, (4, 1)),
        (2, 3, 2, (1, 3)),
        (6, 1, 4, None),
        (1, 1, 2, None),
    ],
)
def test_the_global_batch_is_the_same_on_every_number_of_processes(batch, accum, processes, expected):
    if expected is None:
        with pytest.raises(ConfigError, match=f"cannot be split evenly over {processes} processes"):
            per_process_batch(batch, accum, processes)
        return
    micro, steps = per_process_batch(batch, accum, processes)
    assert (micro, steps) == expected
    assert micro * steps * processes == batch * accum and micro <= batch


def test_shards_cover_every_position_once_with_a_fair_share_of_tokens():
    lengths = [5, 1, 9, 3, 7]
    assert shard_positions(lengths, 2, 0) == [0, 1, 2]  # by length: 9, 7, 5, 3, 1 dealt 0, 1, 0, 1, 0
    assert shard_positions(lengths, 2, 1) == [3, 4]
    rng = np.random.default_rng(0)
    lengths = rng.integers(10, 2000, size=101).tolist()
    shards = [shard_positions(lengths, 4, rank) for rank in range(4)]
    assert sorted(i for shard in shards for i in shard) == list(range(101))
    tokens = [sum(lengths[i] for i in shard) for shard in shards]
    assert max(tokens) - min(tokens) <= max(lengths)
    assert shard_positions([3, 1], 4, 3) == []  # more processes than prompts: some score nothing
    with pytest.raises(ValueError, match="rank 2"):
        shard_positions(lengths, 2, 2)


def test_merging_shards_restores_the_input_order_and_refuses_gaps_or_overlaps():
    merged = merge_shards(5, [([0, 1, 2], [0.0, 0.1, 0.2]), ([3, 4], [0.3, 0.4])])
    assert merged.tolist() == [0.0, 0.1, 0.2, 0.3, 0.4]
    assert merge_shards(3, [([2, 0], [0.2, 0.0]), ([], []), ([1], [0.1])]).tolist() == [0.0, 0.1, 0.2]
    with pytest.raises(ValueError, match="1 of 3 positions are in no shard"):
        merge_shards(3, [([0, 2], [0.0, 0.2])])
    with pytest.raises(ValueError, match="more than one shard"):
        merge_shards(2, [([0, 1], [0.0, 0.1]), ([1], [0.1])])
    with pytest.raises(ValueError, match="out of range"):
        merge_shards(2, [([0, 2], [0.0, 0.2])])


def test_each_process_scores_its_shard_and_every_process_gets_all_scores_in_input_order():
    prompts = [f"prompt {'x' * n}" for n in (4, 40, 12, 33, 1, 25, 7)]
    seen: dict[int, list[str]] = {}

    def work(comm):
        def score(model, batch):
            seen[comm.rank] = batch
            return [len(p) / 100 for p in batch]

        return sharded_scorer(score, prompts, comm)(None)

    results, _ = run_ranks(2, work)
    expected = [len(p) / 100 for p in prompts]
    assert results[0].tolist() == expected and results[1].tolist() == expected
    assert sorted(seen[0] + seen[1]) == sorted(prompts) and not set(seen[0]) & set(seen[1])
    assert abs(len(seen[0]) - len(seen[1])) <= 1
    assert sharded_scorer(lambda m, batch: [len(p) / 100 for p in batch], prompts, Single())(None).tolist() == expected


def test_rank_zero_alone_runs_the_work_and_everyone_waits_for_it(tmp_path):
    def work(comm):
        return on_main(comm, lambda: (tmp_path / "train.json").write_text(str(comm.rank)))

    results, comms = run_ranks(3, work)
    assert (tmp_path / "train.json").read_text() == "0"
    assert results[1:] == [None, None] and all(c.barriers == 1 for c in comms)
    assert on_main(Single(), lambda: 7) == 7


def test_rank_zero_decides_every_epoch_and_saves_alone_and_all_ranks_stop_together(tmp_path):
    import reasoningrec.metrics as metrics

    script = iter([0.60, 0.70, 0.65, 0.70, 0.69, 0.90])  # consumed only if the AUC is computed once per epoch
    saved: list[tuple[int, int, float]] = []

    class Control:
        should_training_stop = False

    def work(comm):
        callback = ValidationAUCCallback(
            scorer=lambda model: np.zeros(2),
            labels=[0, 1],
            patience=3,
            comm=comm,
            save_best=lambda model, epoch, auc: saved.append((comm.rank, epoch, auc)),
        )
        control = Control()
        for epoch in range(1, 7):
            callback.end_epoch(None, epoch, control)
            if control.should_training_stop:
                break
        folder = tmp_path / f"checkpoint-{comm.rank}"
        folder.mkdir()

        class Args:
            output_dir = str(tmp_path)

        class State:
            global_step = comm.rank

        callback.on_save(Args(), State(), control)
        return epoch, callback.state_dict()

    original = metrics.auc
    metrics.auc = lambda labels, scores: next(script)
    try:
        results, _ = run_ranks(2, work)
    finally:
        metrics.auc = original
    assert results[0] == results[1]
    epoch, state = results[0]
    assert epoch == 5 and state["best_epoch"] == 2 and state["bad_epochs"] == 3
    assert saved == [(0, 1, 0.60), (0, 2, 0.70)]
    assert (tmp_path / "checkpoint-0" / CALLBACK_STATE).is_file()
    assert not (tmp_path / "checkpoint-1" / CALLBACK_STATE).exists()


def test_world_from_the_launcher_environment():
    assert world_from_env({}) == World(0, 1, 0)
    assert world_from_env({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}) == World(3, 4, 1)
    assert not world_from_env({"RANK": "1", "WORLD_SIZE": "2"}).main
    with pytest.raises(ConfigError, match="not within"):
        world_from_env({"RANK": "2", "WORLD_SIZE": "2"})


def test_processes_setting():
    assert launch.resolve_processes(1, 8) == 1
    assert launch.resolve_processes("auto", 0) == 1 and launch.resolve_processes("auto", 4) == 4
    assert launch.resolve_processes(2, 0) == 2  # CPU processes: the path, not a speed-up
    with pytest.raises(ConfigError, match="only 2 GPU"):
        launch.resolve_processes(3, 2)


def test_the_launch_command_and_environment(tmp_path):
    command = launch.launch_command(
        2,
        dataset="beauty",
        method="reasoningrec",
        k_shots=256,
        seed=1,
        out_dir=tmp_path,
        settings_file=tmp_path / "s.json",
        python="py",
    )
    assert command[:5] == ["py", "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    assert command[5:9] == ["-m", "reasoningrec", "train", "-d"] and "--out" in command
    assert launch.launch_env({"PATH": "/bin"}, 2, cpu_count=16)["OMP_NUM_THREADS"] == "8"
    assert launch.launch_env({"OMP_NUM_THREADS": "3"}, 2, cpu_count=16)["OMP_NUM_THREADS"] == "3"


def test_a_failed_launch_says_why_and_leaves_no_settings_file(tmp_path, monkeypatch):
    from reasoningrec.config import parse_params

    monkeypatch.setattr(
        launch,
        "launch_command",
        lambda *a, **k: [sys.executable, "-c", "import sys; print('rank 1 ran out of memory'); sys.exit(3)"],
    )
    with pytest.raises(TrainingError, match="exit code 3") as caught:
        launch.launch_training(parse_params({}), "tiny", "reasoningrec", 8, 0, tmp_path / "run", 2)
    assert "rank 1 ran out of memory" in str(caught.value)
    assert "rank 1 ran out of memory" in (tmp_path / "run" / launch.LAUNCH_LOG).read_text()
    assert not (tmp_path / "run" / launch.LAUNCH_SETTINGS).exists()


def test_an_experiment_is_not_run_by_every_process_of_a_launch(monkeypatch):
    from reasoningrec.config import parse_params
    from reasoningrec.experiment import run_experiment

    params = parse_params({"datasets": {"tiny": {"source": "table", "path": "unused"}}})
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    with pytest.raises(ConfigError, match="train.processes"):
        run_experiment(params, "tiny", "reasoningrec", 8, 0)


# --------------------------------------------------------------------------- a real launch


def test_training_on_two_processes_writes_one_adapter_and_the_gathered_auc(tiny_model_dir, tmp_path):
    """``train.processes: 2`` on CPU: torchrun, two gloo processes of the tiny model."""
    from reasoningrec.chat import render_chat
    from reasoningrec.config import parse_params
    from reasoningrec.io import read_json, write_parquet
    from reasoningrec.metrics import auc
    from reasoningrec.models import load_adapter
    from reasoningrec.scoring import score_prompts
    from reasoningrec.training.train import TrainResult, run_train

    params = parse_params(
        {
            "paths": {"work_dir": str(tmp_path / "work"), "models_dir": str(tmp_path / "models")},
            "datasets": {"tiny": {"source": "table", "path": "unused"}},
            "records": {"k_shots": [8], "max_length": 128},
            "train": {
                "base_model": str(tiny_model_dir),
                "epochs": 2,
                "batch_size": 2,
                "grad_accum": 2,
                "patience": 2,
                "learning_rate": 1e-2,
                "precision": "fp32",
                "processes": 2,
            },
        }
    )
    records = records_frame(8, 9, 8)
    write_parquet(params.work_dir("tiny") / "records.parquet", records)
    result = run_train(params, "tiny", "reasoningrec", 8, 0)

    out = tmp_path / "models" / "tiny" / "reasoningrec-k8-s0"
    assert sorted(p.name for p in out.iterdir()) == ["adapter", "train-launch.log", "train.json"]
    assert result == TrainResult.read(out / "train.json")
    assert result.processes == 2 and result.epochs_run == 2 and len(result.history) == 2
    meta = read_json(out / "adapter" / "reasoningrec.json")
    assert meta["processes"] == 2 and meta["best_epoch"] == result.best_epoch
    assert "process 1 of 2" in (out / "train-launch.log").read_text()

    # The AUC gathered from both processes' shards is the AUC of the saved adapter on all prompts.
    model, tokenizer, _ = load_adapter(out / "adapter", device="cpu")
    valid = records[records["split"] == "valid"]
    scores = score_prompts(model, tokenizer, [render_chat(tokenizer, p) for p in valid["prompt_text"]])
    assert result.best_valid_auc == pytest.approx(auc(valid["label"].astype(int), scores), abs=1e-12)
    assert 0 < result.best_valid_auc < 1

    # Trained already with these settings: reused without another launch.
    stamp = (out / "train-launch.log").stat().st_mtime_ns
    assert run_train(params, "tiny", "reasoningrec", 8, 0) == result
    assert (out / "train-launch.log").stat().st_mtime_ns == stamp
    assert not Path(out / launch.LAUNCH_SETTINGS).exists()


def test_the_train_command_sets_the_processes_and_prints_once_per_launch(monkeypatch, tmp_path):
    """``reasoningrec train --processes N`` is ``--set train.processes=N``; a process of a launch
    other than rank 0 prints nothing (rank 0 speaks for the launch)."""
    from typer.testing import CliRunner

    import reasoningrec.cli  # noqa: F401  (registers the commands)
    from reasoningrec.app import app
    from reasoningrec.training import train as train_module
    from reasoningrec.training.train import TrainResult

    seen = []

    def fake_run_train(params, dataset, method, k, seed, out):
        seen.append(params.train.processes)
        return TrainResult(
            adapter_dir=tmp_path / "adapter",
            best_epoch=1,
            best_valid_auc=0.5,
            epochs_run=1,
            precision="fp32",
            processes=2,
        )

    monkeypatch.setattr(train_module, "run_train", fake_run_train)
    runner = CliRunner()
    result = runner.invoke(app, ["train", "-d", "beauty", "--processes", "2"])
    assert result.exit_code == 0, result.output
    assert seen == [2] and "2 process(es)" in result.output
    result = runner.invoke(app, ["train", "-d", "beauty", "--processes", "auto", "--set", "train.epochs=1"])
    assert result.exit_code == 0 and seen[-1] == "auto"
    result = runner.invoke(app, ["train", "-d", "beauty", "--processes", "0"])
    assert isinstance(result.exception, ConfigError) and "--set train.processes=0" in str(result.exception)
    import reasoningrec.training.distributed as distributed

    monkeypatch.setattr(distributed, "current_comm", lambda: World(1, 2, 1))
    monkeypatch.setattr(distributed, "finish", lambda comm: None)
    result = runner.invoke(app, ["train", "-d", "beauty"])
    assert result.exit_code == 0 and result.output == ""


def test_the_experiment_leader_sends_one_order_and_releases_the_others_when_it_does_not_train():
    from reasoningrec.training.distributed import order_followers, run_launched

    def launch(lead):
        followed = []
        results, _ = run_ranks(3, lambda comm: run_launched(comm, lambda: lead(comm), followed.append))
        return results, followed

    def trains(comm):
        order_followers(("train", "tiny", "reasoningrec", 8, 0, "/runs/x"))
        order_followers(("none",))  # a second order is never sent: the others are training
        return "summary"

    results, followed = launch(trains)
    assert results == ["summary", None, None]
    assert followed == [("train", "tiny", "reasoningrec", 8, 0, "/runs/x")] * 2
    # Zero-shot, up to date or failed: released at once with "none" (an error still reaches rank 0's caller).
    assert launch(lambda comm: "zero-shot") == (["zero-shot", None, None], [("none",)] * 2)
    with pytest.raises(RuntimeError, match="records missing"):
        launch(lambda comm: (_ for _ in ()).throw(RuntimeError("records missing")))


@pytest.mark.slow  # a two-process experiment: training, scoring, explanations, MLflow (~1-2 min on 2 cores)
def test_the_experiment_under_torchrun_trains_on_every_rank_and_logs_one_run(tiny_model_dir, tmp_path):
    """``torchrun --nproc-per-node 2 -m reasoningrec experiment``: one adapter, one metrics.json, one MLflow run."""
    import os
    import subprocess

    import mlflow_support
    import yaml
    from mlflow import MlflowClient
    from test_experiment import _dataset_folder

    from reasoningrec.explanations.features import run_vocabulary
    from reasoningrec.records.stage import run_records

    params = mlflow_support.tracking_params(
        tmp_path,
        mlflow_support.migrated_store(tmp_path / "template"),
        datasets={"tiny": {"source": "table", "path": "unused", "domain": "beauty"}},
        records={"k_shots": [4], "valid_size": 6, "max_length": 512, "variants": ["full"]},
        train={
            "base_model": str(tiny_model_dir),
            "epochs": 1,
            "batch_size": 2,
            "grad_accum": 2,
            "precision": "fp32",
            "patience": 1,
        },
        llm={"batch_size": 4},
        evaluate={"explain_limit": 2, "explain_max_new_tokens": 4, "bertscore_model": "none"},
    )
    _dataset_folder(params.work_dir("tiny"))
    run_vocabulary(params, "tiny")
    run_records(params, "tiny")
    settings = tmp_path / "params.yaml"
    settings.write_text(yaml.safe_dump(params.model_dump(mode="json", by_alias=True)))
    env = {**os.environ, "MLFLOW_TRACKING_URI": params.tracking.tracking_uri, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node=2",
            "-m",
            "reasoningrec",
            "experiment",
            "-d",
            "tiny",
            "--method",
            "reasoningrec",
            "--k",
            "4",
            "--seed",
            "0",
            "--params",
            str(settings),
            "--allow-stale",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = params.work_dir("tiny") / "runs" / "reasoningrec-k4-s0"
    summary = json.loads((out / "metrics.json").read_text())
    assert done.stdout.count('"run_id"') == 1  # rank 0 alone prints its summary
    assert json.loads((out / "train.json").read_text())["processes"] == 2
    client = MlflowClient(params.tracking.tracking_uri)
    experiment_id = client.get_experiment_by_name(params.tracking.experiment).experiment_id
    runs = client.search_runs([experiment_id])
    assert [r.info.run_id for r in runs] == [summary["run_id"]]
