"""Runs -> cells: what the report reads from one MLflow run, and the seeds of one (dataset, method, K)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from reasoningrec.methods import METHODS, baseline_names

MISSING = "—"
METHOD_ORDER = tuple(METHODS)


@dataclass(frozen=True)
class RunRecord:
    """What the report needs from one MLflow run."""

    run_id: str
    dataset: str
    method: str
    k_shots: str
    seed: str
    metrics: dict[str, float]
    params: dict[str, str]
    tags: dict[str, str]
    start_time: int = 0
    test_ci: tuple[float, float] | None = None
    # label and p_yes of the test split indexed by user_id (from the predictions artifact), for paired tests
    test_scores: Any = field(default=None, compare=False, repr=False)

    def param(self, name: str) -> str | None:
        """A param by exact name, else by its last dotted segment (``train.base_model``)."""
        if name in self.params:
            return self.params[name]
        for key, value in sorted(self.params.items()):
            if key.rsplit(".", 1)[-1] == name:
                return value
        return None

    @property
    def population(self) -> str:
        """The evaluation population the run was scored on (runs without the tag: ``all``)."""
        return self.tags.get("population") or "all"

    @property
    def answer_weight(self) -> float:
        value = self.param("answer_loss_weight")
        try:
            return float(value) if value is not None else 1.0
        except ValueError:
            return 1.0

    @property
    def command(self) -> str:
        explicit = self.tags.get("command") or self.params.get("command")
        if explicit:
            return explicit
        if self.method in baseline_names():
            return f"reasoningrec baselines -d {self.dataset} --seeds {self.seed}"
        return f"reasoningrec experiment -d {self.dataset} --method {self.method} --k {self.k_shots} --seed {self.seed}"


def latest_per_seed(records: Iterable[RunRecord]) -> list[RunRecord]:
    """Keep the newest run of each (dataset, method, K, seed, answer weight): reruns replace older ones."""
    best: dict[tuple, RunRecord] = {}
    for record in records:
        key = (record.dataset, record.population, record.method, record.k_shots, record.seed, record.answer_weight)
        if key not in best or record.start_time > best[key].start_time:
            best[key] = record
    return sorted(best.values(), key=lambda r: (r.dataset, r.method, r.k_shots, r.seed, r.answer_weight))


@dataclass
class Cell:
    """All seeds of one (dataset, method, K[, answer weight])."""

    dataset: str
    method: str
    k_shots: str
    runs: list[RunRecord] = field(default_factory=list)

    def values(self, metric: str) -> list[float]:
        return [r.metrics[metric] for r in self.runs if _finite(r.metrics.get(metric))]

    def mean(self, metric: str = "test_auc") -> float | None:
        values = self.values(metric)
        return statistics.fmean(values) if values else None

    def std(self, metric: str = "test_auc") -> float | None:
        values = self.values(metric)
        return statistics.stdev(values) if len(values) > 1 else None

    def n(self, metric: str = "test_auc") -> int:
        return len(self.values(metric))

    def ci(self) -> tuple[float, float] | None:
        """Mean over seeds of each run's bootstrap 95% interval of test AUC (None without predictions)."""
        found = [r.test_ci for r in self.runs if r.test_ci and all(map(_finite, r.test_ci))]
        if not found:
            return None
        return statistics.fmean(c[0] for c in found), statistics.fmean(c[1] for c in found)

    def distinct(self, getter) -> str:
        values = sorted({str(v) for v in (getter(r) for r in self.runs) if v not in (None, "")})
        return ", ".join(values) or MISSING


def group_cells(records: Iterable[RunRecord], by_weight: bool = False) -> dict[tuple, Cell]:
    """Cells keyed by (dataset, method, K) or, with ``by_weight``, (dataset, method, K, answer weight)."""
    cells: dict[tuple, Cell] = {}
    for record in records:
        key = (record.dataset, record.method, record.k_shots)
        if by_weight:
            key += (record.answer_weight,)
        cells.setdefault(key, Cell(record.dataset, record.method, record.k_shots)).runs.append(record)
    return cells


def _finite(value: Any) -> bool:
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def k_sort_key(k: str) -> tuple[int, int]:
    if k == "0":
        return (0, 0)
    if k.isdigit():
        return (1, int(k))
    return (2, 0)  # "all"


def method_sort_key(method: str) -> tuple[int, str]:
    base = base_method(method)
    return (METHOD_ORDER.index(base) if base in METHOD_ORDER else len(METHOD_ORDER), method)


def base_method(label: str) -> str:
    """``reasoningrec`` of a row label such as ``reasoningrec (answer_loss_weight=50)``."""
    return label.split(" (", 1)[0]


def method_label(record: RunRecord) -> str:
    """Row label: the method, with its answer-token loss weight when it is not the paper's plain 1."""
    weight = record.answer_weight
    return record.method if weight == 1.0 else f"{record.method} (answer_loss_weight={weight:g})"


def labelled_cells(records: Iterable[RunRecord]) -> dict[tuple, Cell]:
    """Cells keyed by (dataset, row label, K): one row per method and loss setting, never mixed."""
    cells: dict[tuple, Cell] = {}
    for record in records:
        label = method_label(record)
        key = (record.dataset, label, record.k_shots)
        cells.setdefault(key, Cell(record.dataset, label, record.k_shots)).runs.append(record)
    return cells
