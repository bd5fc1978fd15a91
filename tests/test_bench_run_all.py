"""``make bench``: benchmarks/run_all.py lists every benchmark, runs one in its quick mode, reports failures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # benchmarks/ is a folder of scripts beside the package

from benchmarks import run_all  # noqa: E402


def bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.run_all", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
    )


def test_list_names_every_benchmark_and_why_it_is_skipped():
    done = bench("--list")
    assert done.returncode == 0, done.stderr
    modules = {p.stem for p in (REPO_ROOT / "benchmarks").glob("*.py")} - {"run_all", "docs_section"}  # helpers
    assert modules <= {b.module for b in run_all.BENCHMARKS}  # a new benchmark must join the list
    for b in run_all.BENCHMARKS:
        assert f"{b.name}: {b.what}" in done.stdout
    assert "demo_wall: " in done.stdout and "skip: minutes: run `bash benchmarks/demo_wall.sh`" in done.stdout
    if not run_all.cuda_available():
        assert done.stdout.count("skip: needs a CUDA GPU") == sum(b.cuda for b in run_all.BENCHMARKS) >= 2


def test_one_quick_benchmark_runs_through_it():
    done = bench("--only", "scoring_speed")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "| one forward pass (ours) |" in done.stdout  # the benchmark's own table came through
    assert "| scoring_speed | ok |" in done.stdout and "1 ok, 0 failed, 0 skipped" in done.stdout


def test_a_failing_benchmark_fails_the_run_and_a_missing_input_skips(tmp_path, monkeypatch, capsys):
    broken = run_all.Benchmark("broken", "no_such_benchmark", ("--x",), "a module that does not exist")
    monkeypatch.setenv("REASONINGREC_DATA_DIR", str(tmp_path))
    needs_data = run_all.Benchmark("needs_data", "data_pipeline", (), "reads ML-1M", data=(run_all.ML1M,))
    outcomes = run_all.run_all([broken, needs_data], timeout=60)
    assert [(o.benchmark.name, o.status) for o in outcomes] == [("broken", "failed"), ("needs_data", "skipped")]
    assert (
        outcomes[0].note.startswith("exit status")
        and "No module named benchmarks.no_such_benchmark" in capsys.readouterr().out
    )
    assert str(tmp_path) in outcomes[1].note and run_all.ML1M in outcomes[1].note
    assert "0 ok, 1 failed, 1 skipped" in run_all.summary(outcomes)
    monkeypatch.setattr(run_all, "BENCHMARKS", (broken,))
    assert run_all.main([]) == 1
    assert run_all.main(["--only", "nothing-called-so"]) == 2
