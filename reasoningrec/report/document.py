"""The report as a document model: blocks (headings, paragraphs, tables, images), built from cells (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

from reasoningrec.methods import ABLATION_BASE, ablations, competitors
from reasoningrec.report.blocks import Block
from reasoningrec.report.cells import (
    MISSING,
    Cell,
    RunRecord,
    base_method,
    group_cells,
    k_sort_key,
    labelled_cells,
    method_sort_key,
)
from reasoningrec.report.noise import HEURISTICS, best_heuristic, best_row, within_noise
from reasoningrec.report.paper import PAPER_AUC, PAPER_CITATION, PAPER_DATASET
from reasoningrec.report.plots import auc_vs_k_png

PAPER_METHOD = ABLATION_BASE
NOISE_MARK = "≈"


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


POPULATIONS = {
    "all": "every user of our split, each with their own last (test) and second-last (valid) item",
    "paper": "the valid/test records the paper's authors scored: their users, target items and labels "
    "(docs/paper_population.md)",
}


def dataset_blocks(
    dataset: str,
    cells: dict[tuple, Cell],
    weighted: dict[tuple, Cell],
    population: str = "all",
    examples: dict | None = None,
) -> list[Block]:
    """Tables 2 and 3, the comparison with the best heuristic, the explanations and the provenance of
    one dataset on one evaluation population; the paper's rows only beside the ``paper`` population."""
    from reasoningrec.report.explanations import explanation_blocks

    mine = {key: c for key, c in cells.items() if c.dataset == dataset}
    paper_name = PAPER_DATASET.get(dataset) if population == "paper" else None
    paper_ks = sorted(k for (d, k) in PAPER_AUC if d == paper_name)
    ks = sorted({c.k_shots for c in mine.values()} | {str(k) for k in paper_ks}, key=k_sort_key)
    methods = sorted({c.method for c in mine.values()}, key=method_sort_key)
    heuristic = best_heuristic(cells, dataset)
    noise = {
        key: within_noise(c, heuristic)
        for key, c in mine.items()
        if heuristic is not None and c.method not in HEURISTICS
    }
    marked = {key for key, value in noise.items() if value}

    blocks = [
        Block("h2", f"Dataset: {dataset}, population: {population}"),
        Block(
            "p",
            f"Evaluation population `{population}`: {POPULATIONS.get(population, population)}. Every "
            "table of this section is measured on it"
            + (
                "; the paper's numbers appear beside the `paper` population only."
                if population != "paper"
                else "; the paper's own numbers are shown beside ours."
            ),
        ),
    ]
    if heuristic is not None:
        blocks.append(
            Block(
                "p",
                f"Best heuristic: {heuristic.method}, test AUC {fmt(heuristic.mean())}. "
                f"{NOISE_MARK} marks a method within noise of it.",
            )
        )
    header = ["method"] + [f"K={k}" for k in ks]
    rows = []
    for method in methods:
        rows.append(
            [method] + [fmt_cell(mine.get((dataset, method, k)), mark=(dataset, method, k) in marked) for k in ks]
        )
        if method == PAPER_METHOD and paper_name:  # the paper's row follows its plain-loss method
            rows.append([f"{method} (paper, {paper_name})"] + [_paper(paper_name, k) for k in ks])
    if paper_name and PAPER_METHOD not in methods:
        rows.append([f"{PAPER_METHOD} (paper, {paper_name})"] + [_paper(paper_name, k) for k in ks])
    blocks += [
        Block("h3", "Test AUC, mean ± std over seeds (layout of the paper's Table 2)"),
        Block("table", header=header, rows=rows),
    ]

    scored = [m for m in methods if any(c.n("test_bertscore_f1") for c in mine.values() if c.method == m)]
    if scored:
        rows = [[m] + [fmt_cell(mine.get((dataset, m, k)), "test_bertscore_f1") for k in ks] for m in scored]
        blocks += [
            Block("h3", "Explanation BERTScore F1 (backbone in the provenance table; not comparable across backbones)"),
            Block("table", header=header, rows=rows),
        ]

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
            blocks += [
                Block("h3", f"Against the best heuristic ({heuristic.method})"),
                Block("table", header=["method", "K", "test AUC", "difference", "within noise"], rows=rows),
            ]

    blocks += explanation_blocks(dataset, mine, examples or {})
    blocks += _ablation_blocks(dataset, mine, weighted, ks)
    rows = [
        [
            c.method,
            c.k_shots,
            str(len(c.runs)),
            c.distinct(lambda r: r.param("base_model")),
            c.distinct(lambda r: r.param("bertscore_model") if "test_bertscore_f1" in r.metrics else None),
            c.distinct(lambda r: r.tags.get("hardware")),
            "<br>".join(f"`{cmd}`" for cmd in sorted({r.command for r in c.runs})),
        ]
        for c in sorted(mine.values(), key=lambda c: (method_sort_key(c.method), k_sort_key(c.k_shots)))
    ]
    blocks += [
        Block("h3", "Provenance of every number"),
        Block(
            "table",
            header=["method", "K", "seeds", "base model", "BERTScore backbone", "hardware", "command"],
            rows=rows,
        ),
    ]
    return blocks


def _verdict_blocks(mine: dict[tuple, Cell]) -> list[Block]:
    """Does fine-tuned ReasoningRec beat every baseline by more than the noise? Best row against best row."""
    ours = best_row(mine.values(), (PAPER_METHOD,))
    if ours is None:
        return []
    rows, outcome = [], {"lower": [], "within noise": [], "noise unknown": [], "not run": []}
    for name, methods in competitors().items():
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
    text = (
        f"Best fine-tuned ReasoningRec row: {ours.method}, K={ours.k_shots}, test AUC {fmt(ours.mean())}; "
        "each baseline by its best row as well (highest mean over K and loss settings). Goal, ReasoningRec "
        f"above every baseline by more than the noise: {summary}"
    )
    return [
        Block("h3", "Does fine-tuned ReasoningRec beat the baselines?"),
        Block("p", text),
        Block("table", header=["baseline", "its best row", "test AUC", "ReasoningRec minus it", "verdict"], rows=rows),
    ]


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
    present = sorted({c.method for c in mine.values() if base_method(c.method) in ablations()}, key=method_sort_key)
    learned_ks = [k for k in ks if k.isdigit() and k != "0"]
    if len(present) > 1:
        rows = [[m] + [fmt_cell(mine.get((dataset, m, k))) for k in learned_ks] for m in present]
        blocks += [
            Block("h3", "Ablations: user profile and item descriptions (layout of the paper's Table 3)"),
            Block("table", header=["method"] + [f"K={k}" for k in learned_ks], rows=rows),
        ]
        rows = []
        for label in present:
            full = label.replace(base_method(label), PAPER_METHOD, 1)  # the same loss setting
            if label == full or full not in present:
                continue
            rows.append(
                [f"{label} − {full}"]
                + [_difference(mine.get((dataset, label, k)), mine.get((dataset, full, k))) for k in learned_ks]
            )
        if rows:
            blocks += [
                Block(
                    "p",
                    f"Each ablation minus full ReasoningRec with the same loss setting; {NOISE_MARK}: "
                    "within noise (paired bootstrap on the shared test users).",
                ),
                Block("table", header=["difference"] + [f"K={k}" for k in learned_ks], rows=rows),
            ]
    weights = sorted({key[3] for key, c in weighted.items() if c.dataset == dataset and c.method == PAPER_METHOD})
    if len(weights) > 1:
        rows = [
            [f"{PAPER_METHOD}, answer_loss_weight={w:g}" + (" (plain)" if w == 1.0 else "")]
            + [fmt_cell(weighted.get((dataset, PAPER_METHOD, k, w))) for k in learned_ks]
            for w in weights
        ]
        blocks += [
            Block("h3", "Plain vs answer-weighted completion loss"),
            Block("table", header=["variant"] + [f"K={k}" for k in learned_ks], rows=rows),
        ]
    return blocks


def build_blocks(records: list[RunRecord], source: str, examples: dict | None = None) -> list[Block]:
    """The whole report as blocks (pure: no MLflow, no files). ``examples``: (dataset, population,
    method) -> the per-explanation evidence of that method's best run (the examples section)."""
    groups = sorted({(r.dataset, r.population) for r in records}, key=lambda g: (g[0], g[1] != "all", g[1]))
    blocks = [
        Block("h1", "ReasoningRec results"),
        Block(
            "p",
            f"Generated {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} from {len(records)} MLflow runs "
            f"({source}). One row per method, one column per K (`all` = trained on every training "
            "interaction, `0` = no training); cells are test AUC mean ± sample std over seeds (n = seeds). "
            f"{NOISE_MARK}: within noise of the dataset's best heuristic: the paired bootstrap 95% "
            "interval of the AUC difference on the test users both scored contains 0 (runs without "
            "predictions: bootstrap intervals overlap, or |difference| < 2 × the larger seed std).",
        ),
        Block(
            "p",
            f"Paper numbers: {PAPER_CITATION}. They come from Mixtral-written texts, Llama-2-7B "
            "fine-tuning and the authors' own splits; ours use the base model in the provenance table.",
        ),
    ]
    if not records:
        blocks.append(
            Block(
                "p", "No runs found: run `reasoningrec baselines -d <dataset>` or `reasoningrec experiment ...` first."
            )
        )
    for dataset, population in groups:
        mine = [r for r in records if r.dataset == dataset and r.population == population]
        cells = labelled_cells(mine)
        chosen = {m: frame for (d, p, m), frame in (examples or {}).items() if (d, p) == (dataset, population)}
        blocks += dataset_blocks(dataset, cells, group_cells(mine, by_weight=True), population, chosen)
        png = auc_vs_k_png(dataset, cells, with_paper=population == "paper")
        if png:
            suffix = "" if population == "all" else f"-{population}"
            blocks.append(
                Block(
                    "image",
                    text=f"{dataset} ({population}): test AUC vs K",
                    png=png,
                    file=f"results-{dataset}{suffix}-auc-vs-k.png",
                )
            )
    return blocks
