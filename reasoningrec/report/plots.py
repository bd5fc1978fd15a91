"""The report's figure: test AUC against K, one distinct colour and marker per method."""

from __future__ import annotations

from reasoningrec.report.cells import Cell, method_sort_key
from reasoningrec.report.paper import PAPER_AUC, PAPER_DATASET

MARKERS = "osD^vP*Xhp<>"


def auc_vs_k_png(dataset: str, cells: dict[tuple, Cell], *, with_paper: bool = True) -> bytes | None:
    """AUC (mean ± std) against K per method; K-free methods (all data, heuristics) as flat lines."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mine = [c for c in cells.values() if c.dataset == dataset and c.mean() is not None]
    if not mine:
        return None
    fig, ax = plt.subplots(figsize=(8, 4), dpi=100)
    ticks: set[int] = set()
    rows = sorted({c.method for c in mine}, key=method_sort_key)
    colours = plt.get_cmap("tab20").colors
    for i, method in enumerate(rows):
        # tab20 gives 20 distinct colours; the marker changes with each pass, so no two rows look alike.
        color, marker = colours[i % len(colours)], MARKERS[i % len(MARKERS)]
        points = sorted((int(c.k_shots), c.mean(), c.std() or 0.0) for c in mine
                        if c.method == method and c.k_shots.isdigit() and c.k_shots != "0")
        if points:
            ks, means, stds = zip(*points, strict=True)
            ticks.update(ks)
            ax.errorbar(ks, means, yerr=stds, marker=marker, capsize=3, color=color, label=method)
        for c in mine:
            if c.method == method and not (c.k_shots.isdigit() and c.k_shots != "0"):
                ax.axhline(c.mean(), linestyle="--", linewidth=1, color=color, label=f"{method} (K={c.k_shots})")
    paper = sorted((k, v) for (d, k), v in PAPER_AUC.items() if with_paper and d == PAPER_DATASET.get(dataset))
    if paper:
        ticks.update(k for k, _ in paper)
        ax.plot(*zip(*paper, strict=True), linestyle=":", marker="x", color="black", label="reasoningrec (paper)")
    ax.set(xscale="log", xlabel="K (training examples)", ylabel="test AUC", title=f"{dataset}: test AUC vs K")
    if ticks:
        ax.set_xticks(sorted(ticks), [str(k) for k in sorted(ticks)])
        ax.minorticks_off()
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


