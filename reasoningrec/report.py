"""The results report: every MLflow run of the contract, as the paper's tables, plots and provenance.

``run_report`` reads the runs (tags ``dataset``, ``method``, ``k_shots``, ``seed``), groups them into
cells (dataset × method × K), and writes ``docs/results.md`` plus a self-contained
``docs/results.html`` (plots embedded as base64 PNG). Each learned method is judged against the best
no-model heuristic of its dataset, not against 0.5. A difference is within noise when the paired
bootstrap 95% interval of the AUC difference on the test users both cells scored contains 0
(:func:`within_noise`); runs without a predictions artifact fall back to overlapping per-run
intervals or |difference| < 2 × the larger seed std.
"""

from __future__ import annotations

import base64
import html
import math
import os
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reasoningrec.config import Params

PAPER_CITATION = (
    "Bismay, Dong & Caverlee (2024), ReasoningRec: Bridging Personalized Recommendations and "
    "Human-Interpretable Explanations through LLM Reasoning, Table 2 (ReasoningRec, test AUC)"
)
# The paper's published ReasoningRec test AUC by (paper dataset, K).
PAPER_AUC: dict[tuple[str, int], float] = {
    ("ML-1M", 64): 0.604, ("ML-1M", 128): 0.691, ("ML-1M", 256): 0.744,
    ("Fashion", 64): 0.675, ("Fashion", 128): 0.762, ("Fashion", 256): 0.786,
    ("Beauty", 64): 0.741, ("Beauty", 128): 0.768, ("Beauty", 256): 0.798,
}  # fmt: skip
# Our dataset names → the paper's (the Amazon 2018 files are the raw source of the paper's data).
PAPER_DATASET = {
    "ml1m": "ML-1M", "fashion": "Fashion", "amazon2018-fashion": "Fashion",
    "beauty": "Beauty", "amazon2018-beauty": "Beauty",
}  # fmt: skip
PAPER_METHOD = "reasoningrec"

HEURISTICS = ("user-like-rate", "item-like-rate")
BASELINE_METHODS = ("sasrec", "caser", *HEURISTICS)  # produced by `reasoningrec baselines`
METHOD_ORDER = (
    "reasoningrec", "reasoningrec-no-profile", "reasoningrec-no-description", "tallrec",
    "zeroshot-reasoningrec", "zeroshot-vanilla", "sasrec", "caser", "user-like-rate", "item-like-rate",
)  # fmt: skip
ABLATIONS = ("reasoningrec", "reasoningrec-no-profile", "reasoningrec-no-description")
# The baselines fine-tuned ReasoningRec is judged against: (name, the methods whose best row stands for it).
COMPETITORS = (
    ("like-rate heuristic", HEURISTICS), ("TALLRec", ("tallrec",)),
    ("zero-shot", ("zeroshot-vanilla", "zeroshot-reasoningrec")), ("SASRec", ("sasrec",)), ("Caser", ("caser",)),
)  # fmt: skip
NOISE_MARK = "≈"
MISSING = "—"


# --------------------------------------------------------------------------- runs → cells


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
        if self.method in BASELINE_METHODS:
            return f"reasoningrec baselines -d {self.dataset} --seeds {self.seed}"
        return (
            f"reasoningrec experiment -d {self.dataset} --method {self.method} "
            f"--k {self.k_shots} --seed {self.seed}"
        )


def latest_per_seed(records: Iterable[RunRecord]) -> list[RunRecord]:
    """Keep the newest run of each (dataset, method, K, seed, answer weight): reruns replace older ones."""
    best: dict[tuple, RunRecord] = {}
    for record in records:
        key = (record.dataset, record.method, record.k_shots, record.seed, record.answer_weight)
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


PAIRED_BOOTSTRAP = 1000
MIN_SHARED_USERS = 20


def paired_difference_ci(a: Cell, b: Cell, n: int = PAIRED_BOOTSTRAP) -> tuple[float, float] | None:
    """Paired bootstrap 95% interval of mean test AUC(a) - mean test AUC(b) over the test users every
    run of both cells scored with the same label; ``None`` when a run has no predictions or fewer
    than :data:`MIN_SHARED_USERS` users are shared."""
    import numpy as np

    from reasoningrec.metrics import paired_auc_difference_ci

    frames = [r.test_scores for r in (*a.runs, *b.runs)]
    if not frames or any(f is None for f in frames):
        return None
    users = frames[0].index
    for frame in frames[1:]:
        users = users.intersection(frame.index)
    labels = frames[0]["label"].reindex(users).to_numpy()
    same_label = np.logical_and.reduce([f["label"].reindex(users).to_numpy() == labels for f in frames])
    users, labels = users[same_label], labels[same_label]
    if len(users) < MIN_SHARED_USERS:
        return None

    def scores(cell: Cell) -> list:
        return [r.test_scores["p_yes"].reindex(users).to_numpy() for r in cell.runs]

    lo, hi = paired_auc_difference_ci(labels, scores(a), scores(b), n=n)
    return None if math.isnan(lo) else (lo, hi)


def within_noise(a: Cell, b: Cell) -> bool | None:
    """Whether the test AUC of two cells differs by no more than the noise.

    With predictions for every run: the paired bootstrap interval of the difference
    (:func:`paired_difference_ci`) contains 0. Without: the per-run bootstrap intervals overlap, or
    |mean difference| < 2 × the larger seed std. ``None`` when no rule applies (one seed each and no
    predictions): the report then says the noise is unknown rather than calling a difference real.
    """
    ma, mb = a.mean(), b.mean()
    if ma is None or mb is None:
        return None
    paired = paired_difference_ci(a, b)
    if paired is not None:
        return paired[0] <= 0 <= paired[1]
    ca, cb = a.ci(), b.ci()
    stds = [s for s in (a.std(), b.std()) if s is not None]
    if ca and cb and ca[0] <= cb[1] and cb[0] <= ca[1]:
        return True
    if stds and abs(ma - mb) < 2 * max(stds):
        return True
    return False if (ca and cb) or stds else None


def best_row(cells: Iterable[Cell], methods: Iterable[str]) -> Cell | None:
    """The cell of highest mean test AUC among the rows of ``methods`` (any K, any loss setting)."""
    wanted = set(methods)
    return max((c for c in cells if base_method(c.method) in wanted and c.mean() is not None),
               key=lambda c: c.mean(), default=None)


def best_heuristic(cells: dict[tuple, Cell], dataset: str) -> Cell | None:
    return best_row((c for c in cells.values() if c.dataset == dataset), HEURISTICS)


# --------------------------------------------------------------------------- formatting helpers


def _finite(value: Any) -> bool:
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def fmt(value: float | None) -> str:
    return MISSING if value is None else f"{value:.3f}"


def fmt_signed(value: float) -> str:
    return f"{value:+.3f}"


def fmt_cell(cell: Cell | None, metric: str = "test_auc", mark: bool = False) -> str:
    """``mean ± std (n=N)``; ``mean (n=1)`` for one seed; the noise mark when ``mark``."""
    if cell is None or cell.mean(metric) is None:
        return MISSING
    std = cell.std(metric)
    text = fmt(cell.mean(metric)) + (f" ± {fmt(std)}" if std is not None else "") + f" (n={cell.n(metric)})"
    return text + (f" {NOISE_MARK}" if mark else "")


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


# --------------------------------------------------------------------------- document model


@dataclass
class Block:
    """One piece of the report, rendered both as Markdown and as HTML."""

    kind: str  # h1 | h2 | h3 | p | table | image
    text: str = ""
    header: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    png: bytes = b""
    file: str = ""


def dataset_blocks(dataset: str, cells: dict[tuple, Cell], weighted: dict[tuple, Cell]) -> list[Block]:
    """Tables 2 and 3, the comparison with the best heuristic and the provenance of one dataset."""
    mine = {key: c for key, c in cells.items() if c.dataset == dataset}
    paper_name = PAPER_DATASET.get(dataset)
    paper_ks = sorted(k for (d, k) in PAPER_AUC if d == paper_name)
    ks = sorted({c.k_shots for c in mine.values()} | {str(k) for k in paper_ks}, key=k_sort_key)
    methods = sorted({c.method for c in mine.values()}, key=method_sort_key)
    heuristic = best_heuristic(cells, dataset)
    noise = {
        key: within_noise(c, heuristic) for key, c in mine.items()
        if heuristic is not None and c.method not in HEURISTICS
    }
    marked = {key for key, value in noise.items() if value}

    blocks = [Block("h2", f"Dataset: {dataset}")]
    if heuristic is not None:
        blocks.append(Block("p", f"Best heuristic: {heuristic.method}, test AUC {fmt(heuristic.mean())}. "
                                 f"{NOISE_MARK} marks a method within noise of it."))
    header = ["method"] + [f"K={k}" for k in ks]
    rows = []
    for method in methods:
        rows.append([method] + [fmt_cell(mine.get((dataset, method, k)), mark=(dataset, method, k) in marked) for k in ks])
        if method == PAPER_METHOD and paper_name:  # the paper's row follows its plain-loss method
            rows.append([f"{method} (paper, {paper_name})"] + [_paper(paper_name, k) for k in ks])
    if paper_name and PAPER_METHOD not in methods:
        rows.append([f"{PAPER_METHOD} (paper, {paper_name})"] + [_paper(paper_name, k) for k in ks])
    blocks += [Block("h3", "Test AUC, mean ± std over seeds (layout of the paper's Table 2)"),
               Block("table", header=header, rows=rows)]

    scored = [m for m in methods if any(c.n("test_bertscore_f1") for c in mine.values() if c.method == m)]
    if scored:
        rows = [[m] + [fmt_cell(mine.get((dataset, m, k)), "test_bertscore_f1") for k in ks] for m in scored]
        blocks += [Block("h3", "Explanation BERTScore F1 (backbone in the provenance table; not comparable across backbones)"),
                   Block("table", header=header, rows=rows)]

    blocks += _verdict_blocks(mine)
    if heuristic is not None:
        rows = []
        for key in sorted(mine, key=lambda key: (method_sort_key(key[1]), k_sort_key(key[2]))):
            cell = mine[key]
            if cell.method in HEURISTICS or cell.mean() is None:
                continue
            diff = cell.mean() - heuristic.mean()
            verdict = {True: "yes", False: "no", None: "unknown (one seed, no predictions)"}[noise[key]]
            rows.append([cell.method, cell.k_shots, fmt(cell.mean()), fmt_signed(diff), verdict])
        if rows:
            blocks += [Block("h3", f"Against the best heuristic ({heuristic.method})"),
                       Block("table", header=["method", "K", "test AUC", "difference", "within noise"], rows=rows)]

    blocks += _ablation_blocks(dataset, mine, weighted, ks)
    rows = [
        [c.method, c.k_shots, str(len(c.runs)), c.distinct(lambda r: r.param("base_model")),
         c.distinct(lambda r: r.param("bertscore_model") if "test_bertscore_f1" in r.metrics else None),
         c.distinct(lambda r: r.tags.get("hardware")),
         "<br>".join(f"`{cmd}`" for cmd in sorted({r.command for r in c.runs}))]
        for c in sorted(mine.values(), key=lambda c: (method_sort_key(c.method), k_sort_key(c.k_shots)))
    ]
    blocks += [Block("h3", "Provenance of every number"),
               Block("table", header=["method", "K", "seeds", "base model", "BERTScore backbone", "hardware", "command"],
                     rows=rows)]
    return blocks


def _verdict_blocks(mine: dict[tuple, Cell]) -> list[Block]:
    """Does fine-tuned ReasoningRec beat every baseline by more than the noise? Best row against best row."""
    ours = best_row(mine.values(), (PAPER_METHOD,))
    if ours is None:
        return []
    rows, outcome = [], {"lower": [], "within noise": [], "noise unknown": [], "not run": []}
    for name, methods in COMPETITORS:
        other = best_row(mine.values(), methods)
        if other is None:
            outcome["not run"].append(name)
            rows.append([name, MISSING, MISSING, MISSING, "not run"])
            continue
        difference = ours.mean() - other.mean()
        noise = within_noise(ours, other)
        verdict = {None: "noise unknown", True: "within noise"}.get(noise) or ("higher" if difference > 0 else "lower")
        if verdict != "higher":
            outcome[verdict].append(name)
        shown = f"ReasoningRec {verdict}" if verdict in ("higher", "lower") else verdict
        rows.append([name, f"{other.method}, K={other.k_shots}", fmt(other.mean()), fmt_signed(difference), shown])
    if not any(outcome.values()):
        summary = "met: ReasoningRec is higher than every baseline by more than the noise."
    else:
        parts = [f"{what}: {', '.join(names)}" for what, names in outcome.items() if names]
        summary = "not met (" + "; ".join(parts) + ")."
    text = (f"Best fine-tuned ReasoningRec row: {ours.method}, K={ours.k_shots}, test AUC {fmt(ours.mean())}; "
            "each baseline by its best row as well (highest mean over K and loss settings). Goal, ReasoningRec "
            f"above every baseline by more than the noise: {summary}")
    return [Block("h3", "Does fine-tuned ReasoningRec beat the baselines?"), Block("p", text),
            Block("table", header=["baseline", "its best row", "test AUC", "ReasoningRec minus it", "verdict"],
                  rows=rows)]


def _paper(paper_name: str, k: str) -> str:
    value = PAPER_AUC.get((paper_name, int(k))) if k.isdigit() else None
    return MISSING if value is None else fmt(value)


def _difference(a: Cell | None, b: Cell | None) -> str:
    """``mean(a) - mean(b)``, marked when within noise; ``—`` when either is missing."""
    if a is None or b is None or a.mean() is None or b.mean() is None:
        return MISSING
    noise = within_noise(a, b)
    mark = {True: f" {NOISE_MARK}", False: "", None: " (noise unknown)"}[noise]
    return fmt_signed(a.mean() - b.mean()) + mark


def _ablation_blocks(dataset: str, mine: dict, weighted: dict, ks: list[str]) -> list[Block]:
    blocks: list[Block] = []
    present = sorted({c.method for c in mine.values() if base_method(c.method) in ABLATIONS}, key=method_sort_key)
    learned_ks = [k for k in ks if k.isdigit() and k != "0"]
    if len(present) > 1:
        rows = [[m] + [fmt_cell(mine.get((dataset, m, k))) for k in learned_ks] for m in present]
        blocks += [Block("h3", "Ablations: user profile and item descriptions (layout of the paper's Table 3)"),
                   Block("table", header=["method"] + [f"K={k}" for k in learned_ks], rows=rows)]
        rows = []
        for label in present:
            full = label.replace(base_method(label), PAPER_METHOD, 1)  # the same loss setting
            if label == full or full not in present:
                continue
            rows.append([f"{label} − {full}"] + [
                _difference(mine.get((dataset, label, k)), mine.get((dataset, full, k))) for k in learned_ks])
        if rows:
            blocks += [Block("p", f"Each ablation minus full ReasoningRec with the same loss setting; {NOISE_MARK}: "
                                  "within noise (paired bootstrap on the shared test users)."),
                       Block("table", header=["difference"] + [f"K={k}" for k in learned_ks], rows=rows)]
    weights = sorted({key[3] for key, c in weighted.items() if c.dataset == dataset and c.method == PAPER_METHOD})
    if len(weights) > 1:
        rows = [[f"{PAPER_METHOD}, answer_loss_weight={w:g}" + (" (plain)" if w == 1.0 else "")]
                + [fmt_cell(weighted.get((dataset, PAPER_METHOD, k, w))) for k in learned_ks] for w in weights]
        blocks += [Block("h3", "Plain vs answer-weighted completion loss"),
                   Block("table", header=["variant"] + [f"K={k}" for k in learned_ks], rows=rows)]
    return blocks


def auc_vs_k_png(dataset: str, cells: dict[tuple, Cell]) -> bytes | None:
    """AUC (mean ± std) against K per method; K-free methods (all data, heuristics) as flat lines."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mine = [c for c in cells.values() if c.dataset == dataset and c.mean() is not None]
    if not mine:
        return None
    fig, ax = plt.subplots(figsize=(6.5, 4), dpi=100)
    ticks: set[int] = set()
    for i, method in enumerate(sorted({c.method for c in mine}, key=method_sort_key)):
        color = f"C{i % 10}"
        points = sorted((int(c.k_shots), c.mean(), c.std() or 0.0) for c in mine
                        if c.method == method and c.k_shots.isdigit() and c.k_shots != "0")
        if points:
            ks, means, stds = zip(*points, strict=True)
            ticks.update(ks)
            ax.errorbar(ks, means, yerr=stds, marker="o", capsize=3, color=color, label=method)
        for c in mine:
            if c.method == method and not (c.k_shots.isdigit() and c.k_shots != "0"):
                ax.axhline(c.mean(), linestyle="--", linewidth=1, color=color, label=f"{method} (K={c.k_shots})")
    paper = sorted((k, v) for (d, k), v in PAPER_AUC.items() if d == PAPER_DATASET.get(dataset))
    if paper:
        ticks.update(k for k, _ in paper)
        ax.plot(*zip(*paper, strict=True), linestyle=":", marker="x", color="black", label="reasoningrec (paper)")
    ax.set(xscale="log", xlabel="K (training examples)", ylabel="test AUC", title=f"{dataset}: test AUC vs K")
    if ticks:
        ax.set_xticks(sorted(ticks), [str(k) for k in sorted(ticks)])
        ax.minorticks_off()
    ax.legend(fontsize=7, loc="best")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def build_blocks(records: list[RunRecord], source: str) -> list[Block]:
    """The whole report as blocks (pure: no MLflow, no files)."""
    cells = labelled_cells(records)
    weighted = group_cells(records, by_weight=True)
    datasets = sorted({r.dataset for r in records})
    blocks = [
        Block("h1", "ReasoningRec results"),
        Block("p", f"Generated {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} from {len(records)} MLflow runs "
                   f"({source}). One row per method, one column per K (`all` = trained on every training "
                   "interaction, `0` = no training); cells are test AUC mean ± sample std over seeds (n = seeds). "
                   f"{NOISE_MARK}: within noise of the dataset's best heuristic: the paired bootstrap 95% "
                   "interval of the AUC difference on the test users both scored contains 0 (runs without "
                   "predictions: bootstrap intervals overlap, or |difference| < 2 × the larger seed std)."),
        Block("p", f"Paper numbers: {PAPER_CITATION}. They come from Mixtral-written texts, Llama-2-7B "
                   "fine-tuning and the authors' own splits; ours use the base model in the provenance table."),
    ]
    if not records:
        blocks.append(Block("p", "No runs found: run `reasoningrec baselines -d <dataset>` or "
                                 "`reasoningrec experiment ...` first."))
    for dataset in datasets:
        blocks += dataset_blocks(dataset, cells, weighted)
        png = auc_vs_k_png(dataset, cells)
        if png:
            blocks.append(Block("image", text=f"{dataset}: test AUC vs K", png=png,
                                file=f"results-{dataset}-auc-vs-k.png"))
    return blocks


# --------------------------------------------------------------------------- rendering


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(blocks: list[Block]) -> str:
    lines: list[str] = []
    for block in blocks:
        if block.kind in ("h1", "h2", "h3"):
            lines += ["#" * int(block.kind[1]) + " " + block.text, ""]
        elif block.kind == "p":
            lines += [block.text, ""]
        elif block.kind == "table":
            lines.append("| " + " | ".join(map(_md_escape, block.header)) + " |")
            lines.append("|" + "---|" * len(block.header))
            lines += ["| " + " | ".join(map(_md_escape, row)) + " |" for row in block.rows]
            lines.append("")
        elif block.kind == "image":
            lines += [f"![{block.text}]({block.file})", ""]
    return "\n".join(lines)


HTML_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ReasoningRec results</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 72rem; margin: 2rem auto; padding: 0 1rem; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5rem 0 1.5rem; font-size: 0.9rem; }}
th, td {{ border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: left; vertical-align: top; }}
th {{ background: #f3f3f3; }}
code {{ font-size: 0.8rem; }}
</style></head><body>
{body}
</body></html>
"""


def _inline_html(text: str) -> str:
    """Escape, then turn `code` spans and <br> back into markup."""
    parts = html.escape(text).replace("&lt;br&gt;", "<br>").split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def render_html(blocks: list[Block]) -> str:
    body: list[str] = []
    for block in blocks:
        if block.kind in ("h1", "h2", "h3"):
            body.append(f"<{block.kind}>{_inline_html(block.text)}</{block.kind}>")
        elif block.kind == "p":
            body.append(f"<p>{_inline_html(block.text)}</p>")
        elif block.kind == "table":
            head = "".join(f"<th>{_inline_html(h)}</th>" for h in block.header)
            rows = "".join("<tr>" + "".join(f"<td>{_inline_html(c)}</td>" for c in row) + "</tr>" for row in block.rows)
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif block.kind == "image":
            data = base64.b64encode(block.png).decode("ascii")
            body.append(f'<p><img alt="{html.escape(block.text)}" src="data:image/png;base64,{data}"></p>')
    return HTML_PAGE.format(body="\n".join(body))


# --------------------------------------------------------------------------- MLflow I/O


def collect_runs(params: Params, n_bootstrap: int = 1000) -> tuple[list[RunRecord], str]:
    """Every finished contract run of the experiment (newest per seed), with bootstrap CIs when possible."""
    from reasoningrec.tracking import experiment_id, get_client, tracking_uri

    client = get_client(params)
    exp = experiment_id(client, params)
    records, token = [], None
    while True:
        page = client.search_runs([exp], filter_string="attributes.status = 'FINISHED'", max_results=1000,
                                  page_token=token)
        for run in page:
            tags = run.data.tags
            if not all(tags.get(key) for key in ("dataset", "method", "k_shots", "seed")):
                continue
            records.append(RunRecord(
                run_id=run.info.run_id, dataset=tags["dataset"], method=tags["method"], k_shots=tags["k_shots"],
                seed=tags["seed"], metrics=dict(run.data.metrics), params=dict(run.data.params),
                tags=dict(tags), start_time=run.info.start_time or 0,
            ))
        token = page.token
        if not token:
            break
    records = latest_per_seed(records)
    if n_bootstrap:
        records = [_with_ci(client, r, n_bootstrap) for r in records]
    return records, f"tracking store {_portable(tracking_uri(params))}, experiment {params.tracking.experiment!r}"


def _portable(uri: str) -> str:
    """The store's URI with this checkout's absolute path made relative (reports are committed)."""
    cwd = os.getcwd().rstrip("/") + "/"
    return uri.replace(f"sqlite:///{cwd}", "sqlite:///").replace(cwd, "")


def _with_ci(client, record: RunRecord, n_bootstrap: int) -> RunRecord:
    """Attach the bootstrap 95% interval of test AUC from the run's predictions artifact, if it has one."""
    import dataclasses
    import tempfile

    import pandas as pd

    from reasoningrec.metrics import bootstrap_auc_ci
    from reasoningrec.tracking import PREDICTIONS_ARTIFACT

    try:
        with tempfile.TemporaryDirectory(prefix="reasoningrec-report-") as tmp:
            frame = pd.read_parquet(client.download_artifacts(record.run_id, PREDICTIONS_ARTIFACT, tmp))
    except Exception:  # no predictions artifact (or unreadable): the std rule alone decides
        return record
    test = frame[frame["split"] == "test"] if "split" in frame.columns else frame
    if test.empty or not {"label", "p_yes"} <= set(test.columns):
        return record
    scores = None
    if "user_id" in test.columns:  # one test record per user; repeated ids keep their first row
        unique = test.drop_duplicates("user_id")
        scores = unique.set_index(unique["user_id"].astype(str))[["label", "p_yes"]]
    return dataclasses.replace(record, test_ci=bootstrap_auc_ci(test["label"], test["p_yes"], n=n_bootstrap),
                               test_scores=scores)


def run_report(params: Params, out: str | Path = Path("docs/results.md"), n_bootstrap: int = 1000) -> Path:
    """Write ``out`` (Markdown), the same report as HTML beside it, and one PNG per dataset; return ``out``."""
    from reasoningrec.io import atomic_open, atomic_path

    out = Path(out)
    records, source = collect_runs(params, n_bootstrap)
    blocks = build_blocks(records, source)
    for block in blocks:
        if block.kind == "image":
            with atomic_path(out.parent / block.file) as tmp:
                tmp.write_bytes(block.png)
    with atomic_open(out) as handle:
        handle.write(render_markdown(blocks))
    with atomic_open(out.with_suffix(".html")) as handle:
        handle.write(render_html(blocks))
    return out
