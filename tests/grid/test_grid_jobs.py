"""Which calls of each dataset's plan the grid runs as data, jobs and after-calls, and the job order."""

from __future__ import annotations

import pytest
from grid_helpers import PARAMS, paper_params

from reasoningrec import methods
from reasoningrec.errors import ConfigError
from reasoningrec.grid.jobs import grid_plans, order_jobs, priority, split_methods

KS, SEEDS = (64, 128, 256), (0, 1, 2)
DATA = ["ingest", "validate_interactions", "prepare", "validate_samples"]


@pytest.fixture(scope="module")
def params():
    return paper_params()


def _jobs(params, datasets=("beauty", "ml100k"), chosen=None):
    plans = grid_plans(params, datasets, chosen, KS, SEEDS)
    return plans, order_jobs([j for p in plans for j in p.jobs], KS, SEEDS, datasets)


def test_every_combination_once_zero_shot_once_baselines_one_job(params):
    plans, jobs = _jobs(params)
    ids = [j.job_id for j in jobs]
    assert len(ids) == len(set(ids))
    fine_tuned, zero_shot = methods.names(llm=True, fine_tuned=True), methods.names(llm=True, fine_tuned=False)
    assert len(jobs) == 2 * (len(fine_tuned) * len(KS) * len(SEEDS) + len(zero_shot) + 1)
    assert {(j.k_shots, j.seed) for j in jobs if j.method in zero_shot} == {(0, 0)}
    assert [j.job_id for j in jobs if j.method is None] == ["beauty/baselines", "ml100k/baselines"]
    assert all(j.call.stage.kind == "gpu" for j in jobs)


def test_data_calls_are_what_the_jobs_need_and_compare_comes_after(params):
    plans, _ = _jobs(params)
    beauty, ml100k = plans
    assert [c.name for c in beauty.data] == [*DATA, "import_texts", "vocabulary", "records"]  # the authors' texts
    assert [c.name for c in ml100k.data] == [
        *DATA,
        "describe",
        "profile",
        "reason",
        "vocabulary",
        "records",
    ]  # written by llm
    assert [c.name for c in beauty.after] == ["compare"]
    no_gates = grid_plans(params, ["beauty"], None, KS, SEEDS, skip_validation=True)[0]
    assert [c.name for c in no_gates.data] == ["ingest", "prepare", "import_texts", "vocabulary", "records"]


def test_baselines_alone_need_no_texts_and_no_records(params):
    (plan,) = grid_plans(params, ["ml100k"], ["sasrec"], KS, SEEDS)
    assert [c.name for c in plan.data] == DATA
    assert [j.job_id for j in plan.jobs] == ["ml100k/baselines"] and plan.after == ()
    assert split_methods(["tallrec", "caser", "tallrec"]) == (["tallrec"], True)
    assert split_methods(None) == (list(methods.names(llm=True)), True)


def test_order_largest_k_first_seed_first_then_other_seeds_then_smaller_k(params):
    _, jobs = _jobs(params)
    tiers = [priority(j, KS, SEEDS) for j in jobs]
    assert tiers == sorted(tiers)
    first = [j for j in jobs if priority(j, KS, SEEDS) == (0, 0)]
    # every method of every dataset has its K=256 seed-0 (or K-free) job in the first tier
    assert {(j.dataset, j.method) for j in first} == {
        (d, m) for d in ("beauty", "ml100k") for m in (*methods.names(llm=True), None)
    }
    assert all(j.k_shots == 256 and j.seed == 0 for j in first if methods.method(j.method or "sasrec").fine_tuned)
    # the baselines (CPU) start first; then ReasoningRec on every dataset, then what it is judged against
    assert [j.job_id for j in jobs[:4]] == [
        "beauty/baselines",
        "ml100k/baselines",
        "beauty/experiment-reasoningrec-k256-s0",
        "ml100k/experiment-reasoningrec-k256-s0",
    ]
    assert [j.method for j in jobs[4:6]] == ["tallrec", "tallrec"]
    position = {j.job_id: i for i, j in enumerate(jobs)}
    assert position["beauty/experiment-label-only-k256-s2"] < position["beauty/experiment-reasoningrec-k128-s0"]
    assert position["beauty/experiment-reasoningrec-k128-s2"] < position["beauty/experiment-reasoningrec-k64-s0"]
    assert position["beauty/experiment-zeroshot-vanilla-k0-s0"] < position["beauty/experiment-label-only-k256-s0"]


def test_settings_that_cannot_serve_the_grid_stop_it_before_any_work(params):
    from reasoningrec.config import read_params

    small = read_params(PARAMS)  # the README's slice: K = 16, the full variant only
    with pytest.raises(ConfigError, match=r"K=\[64\] not among records.k_shots \[16\].*'titles'.*tallrec"):
        grid_plans(small, ["fashion"], None, [64], [0])
    assert grid_plans(small, ["fashion"], ["reasoningrec"], [16], [0])[0].jobs  # within the slice: fine
    with pytest.raises(ConfigError, match="unknown method 'nope'"):
        grid_plans(params, ["beauty"], ["nope"], KS, SEEDS)
    with pytest.raises(ConfigError, match="seed"):
        grid_plans(params, ["beauty"], None, KS, [])
    with pytest.raises(ConfigError, match="unknown dataset 'nope'"):
        grid_plans(params, ["nope"], None, KS, SEEDS)
