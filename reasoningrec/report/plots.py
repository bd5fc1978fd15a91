"""The report's figure: test AUC against K, one distinct colour and marker per method."""

from __future__ import annotations

from reasoningrec.report.cells import Cell, method_sort_key
from reasoningrec.report.paper import PAPER_AUC, PAPER_DATASET

MARKERS = "osD^vP*Xhp<>"  # 12 markers; with tab20's 20 colours, the first 60 methods never share a pair
PAPER_STYLE = ("black", "x")  # the paper's numbers: neither a tab20 colour nor one of MARKERS


def method_styles(count: int) -> list[tuple[tuple[float, ...], str]]:
    """A (colour, marker) per method, in row order: colour ``i mod 20`` of tab20 and marker ``i mod 12``,
    so no two of the first 60 methods look alike (and the first 20 differ in colour alone)."""
    from matplotlib import colormaps

    colours = colormaps["tab20"].colors
    return [(colours[i % len(colours)], MARKERS[i % len(MARKERS)]) for i in range(count)]


def auc_vs_k_png(dataset: str, cells: dict[tuple, Cell], *, with_paper: bool = True) -> bytes | None:
    """The figure of :func:`auc_vs_k_figure` as PNG bytes (None when the dataset has no result)."""
    import io

    import matplotlib.pyplot as plt

    fig = auc_vs_k_figure(dataset, cells, with_paper=with_paper)
    if fig is None:
        return None
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def auc_vs_k_figure(dataset: str, cells: dict[tuple, Cell], *, with_paper: bool = True):
    """AUC (mean ± std) against K per method, one colour and marker each (:func:`method_styles`);
    K-free methods (all data, heuristics) as flat dashed lines; the legend right of the axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mine = [c for c in cells.values() if c.dataset == dataset and c.mean() is not None]
    if not mine:
        return None
    fig, ax = plt.subplots(figsize=(8, 4), dpi=100)
    ticks: set[int] = set()
    rows = sorted({c.method for c in mine}, key=method_sort_key)
    flat = []  # (cell, colour, marker) of K-free results, drawn once the K axis is known
    for method, (color, marker) in zip(rows, method_styles(len(rows)), strict=True):
        points = sorted(
            (int(c.k_shots), c.mean(), c.std() or 0.0)
            for c in mine
            if c.method == method and c.k_shots.isdigit() and c.k_shots != "0"
        )
        if points:
            ks, means, stds = zip(*points, strict=True)
            ticks.update(ks)
            ax.errorbar(ks, means, yerr=stds, marker=marker, capsize=3, color=color, label=method)
        flat += [
            (c, color, marker) for c in mine if c.method == method and not (c.k_shots.isdigit() and c.k_shots != "0")
        ]
    paper = sorted((k, v) for (d, k), v in PAPER_AUC.items() if with_paper and d == PAPER_DATASET.get(dataset))
    if paper:
        ticks.update(k for k, _ in paper)
        ax.plot(
            *zip(*paper, strict=True),
            linestyle=":",
            marker=PAPER_STYLE[1],
            color=PAPER_STYLE[0],
            label="reasoningrec (paper)",
        )
    for c, color, marker in flat:
        label = f"{c.method} (K={c.k_shots})"
        if ticks:  # a dashed level across the K axis, its marker at each K
            ax.plot(
                sorted(ticks),
                [c.mean()] * len(ticks),
                linestyle="--",
                linewidth=1,
                color=color,
                marker=marker,
                markersize=4,
                label=label,
            )
        else:
            ax.axhline(c.mean(), linestyle="--", linewidth=1, color=color, marker=marker, label=label)
    ax.set(xscale="log", xlabel="K (training examples)", ylabel="test AUC", title=f"{dataset}: test AUC vs K")
    if ticks:
        ax.set_xticks(sorted(ticks), [str(k) for k in sorted(ticks)])
        ax.minorticks_off()
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)  # outside the data
    return fig
