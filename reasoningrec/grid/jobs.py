"""What the grid runs, per dataset, and in which order: all of it read off :func:`reasoningrec.pipeline.plan`.

A dataset's plan splits three ways. Its GPU calls (``Stage.kind == "gpu"``: the experiments and the
baselines) are the **jobs**, run by the worker pool. The calls the jobs need (transitively: the
producers of their inputs and the validation gates before them) are the **data** calls, run first,
in plan order. The calls that read the jobs' outputs (``compare``) come **after** them. Anything else
in the plan (the ``describe.limit`` sample beside imported texts) is not part of the grid.

Jobs run most important first (:func:`order_jobs`), so a grid cut short by a deadline still has the
headline column on every dataset: the largest K at the first seed of every method, with the zero-shot
rows and the baselines; then the other seeds of that K; then each smaller K.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from reasoningrec import methods as method_table
from reasoningrec.completion import upstream
from reasoningrec.errors import ConfigError
from reasoningrec.pipeline import Call, plan

if TYPE_CHECKING:
    from reasoningrec.config import Params


@dataclass(frozen=True)
class Job:
    """One GPU call of a dataset's plan: an experiment (method, K, seed) or the baselines."""

    call: Call

    @property
    def job_id(self) -> str:
        """``<dataset>/<call>``, e.g. ``beauty/experiment-reasoningrec-k256-s0``, ``beauty/baselines``."""
        return f"{self.call.dataset}/{self.call.name}"

    @property
    def dataset(self) -> str:
        return self.call.dataset

    @property
    def method(self) -> str | None:
        """The LLM method of an experiment (None for the baselines)."""
        return dict(self.call.options).get("method")

    @property
    def k_shots(self) -> int:
        return int(dict(self.call.options).get("k_shots", 0))

    @property
    def seed(self) -> int | None:
        seed = dict(self.call.options).get("seed")
        return None if seed is None else int(seed)


@dataclass(frozen=True)
class DatasetPlan:
    """One dataset's share of the grid: its full plan and the three parts the grid runs."""

    dataset: str
    calls: tuple[Call, ...]
    data: tuple[Call, ...]
    jobs: tuple[Job, ...]
    after: tuple[Call, ...]


def split_methods(names: Sequence[str] | None) -> tuple[list[str], bool]:
    """(LLM methods, whether the baselines run) of a ``--methods`` list; None = every method."""
    chosen = list(names) if names is not None else list(method_table.METHODS)
    for name in chosen:
        method_table.method(name)  # a clear error for an unknown name
    llm = [name for name in dict.fromkeys(chosen) if method_table.method(name).is_llm]
    return llm, any(name in method_table.baseline_names() for name in chosen)


def check_settings(params: Params, llm_methods: Sequence[str], k_shots: Sequence[int]) -> None:
    """Stop before any work when the records cannot serve these methods or K (one clear error)."""
    problems = []
    fine_tuned = [m for m in llm_methods if method_table.method(m).fine_tuned]
    missing_k = [k for k in k_shots if k not in params.records.k_shots]
    if fine_tuned and missing_k:
        problems.append(f"K={missing_k} not among records.k_shots {params.records.k_shots}")
    variants = {method_table.method(m).variant for m in llm_methods}
    missing_variants = sorted(v for v in variants if v not in params.records.variants)
    if missing_variants:
        needing = [m for m in llm_methods if method_table.method(m).variant in missing_variants]
        problems.append(
            f"record variant(s) {missing_variants} of {needing} not among records.variants {params.records.variants}"
        )
    if problems:
        raise ConfigError(
            "the grid cannot run: "
            + "; ".join(problems)
            + " (add them with --set records...=[...] or --overlay configs/paper.yaml)"
        )


def dataset_plan(
    params: Params,
    dataset: str,
    llm_methods: Sequence[str],
    k_shots: Sequence[int],
    seeds: Sequence[int],
    *,
    baselines: bool,
    skip_validation: bool = False,
) -> DatasetPlan:
    """Split the dataset's plan into data calls, jobs and the calls after them (module docstring).
    ``skip_validation`` leaves the validation gates out (a machine without Great Expectations)."""
    calls = plan(params, dataset, llm_methods, k_shots, seeds, baselines=baselines)
    gpu = [c for c in calls if c.stage.kind == "gpu"]
    needed: set[str] = set()
    pending = [u for job in gpu for u in upstream(job, calls)]
    while pending:
        call = pending.pop()
        if call.name not in needed:
            needed.add(call.name)
            pending.extend(upstream(call, calls))
    gpu_names = {c.name for c in gpu}
    data = tuple(
        c for c in calls if c.name in needed and c.name not in gpu_names and not (skip_validation and c.stage.gate)
    )
    after = tuple(
        c
        for c in calls
        if c.name not in needed and c.name not in gpu_names and any(u.name in gpu_names for u in upstream(c, calls))
    )
    return DatasetPlan(dataset, tuple(calls), data, tuple(Job(c) for c in gpu), after)


def grid_plans(
    params: Params,
    datasets: Sequence[str],
    methods: Sequence[str] | None,
    k_shots: Sequence[int],
    seeds: Sequence[int],
    *,
    skip_validation: bool = False,
) -> list[DatasetPlan]:
    """Every dataset's plan for these methods (None: all, baselines included), K and seeds."""
    if not seeds:
        raise ConfigError("the grid needs at least one seed")
    llm_methods, baselines = split_methods(methods)
    check_settings(params, llm_methods, k_shots)
    return [
        dataset_plan(params, d, llm_methods, k_shots, seeds, baselines=baselines, skip_validation=skip_validation)
        for d in dict.fromkeys(datasets)
    ]


# --------------------------------------------------------------------------- order


def priority(job: Job, k_shots: Sequence[int], seeds: Sequence[int]) -> tuple[int, int]:
    """(K tier, seed tier): 0 = the largest K (and the K-free jobs: zero-shot, baselines), then
    each smaller K; seeds in the given order."""
    if job.method is None or not method_table.method(job.method).fine_tuned:
        return (0, 0)
    by_size = sorted({int(k) for k in k_shots}, reverse=True)
    return (by_size.index(job.k_shots), list(seeds).index(job.seed))


def method_rank(job: Job) -> tuple[int, int]:
    """Importance inside a tier, from the method table: the baselines first (they run on the CPU
    beside the GPU jobs for the whole call), then ReasoningRec, the methods it is judged against,
    its ablations; table order inside each group."""
    if job.method is None:
        return (-1, 0)
    spec = method_table.method(job.method)
    group = 0 if spec.family == "reasoningrec" else 1 if spec.competitor else 2
    return (group, list(method_table.METHODS).index(spec.name))


def order_jobs(jobs: Sequence[Job], k_shots: Sequence[int], seeds: Sequence[int], datasets: Sequence[str]) -> list[Job]:
    """Most important first: by (K tier, seed tier), then method importance, then dataset."""
    dataset_rank = {d: i for i, d in enumerate(datasets)}
    return sorted(
        jobs,
        key=lambda job: (
            *priority(job, k_shots, seeds),
            *method_rank(job),
            dataset_rank.get(job.dataset, len(dataset_rank)),
        ),
    )
