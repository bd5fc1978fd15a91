"""The figures: one distinct colour and marker per method, the legend outside the data."""

from __future__ import annotations

import random

from matplotlib.colors import to_rgba
from matplotlib.container import ErrorbarContainer

from reasoningrec.report.cells import Cell, RunRecord
from reasoningrec.report.plots import MARKERS, PAPER_STYLE, auc_vs_k_figure, auc_vs_k_png, method_styles


def _cell(dataset: str, method: str, k: str, aucs: list[float]) -> Cell:
    return Cell(
        dataset,
        method,
        k,
        [
            RunRecord(f"{method}-{k}-{i}", dataset, method, k, str(i), {"test_auc": a}, {}, {})
            for i, a in enumerate(aucs)
        ],
    )


def test_method_styles_never_repeat_within_sixty_methods():
    styles = method_styles(60)
    assert len(set(styles)) == 60
    assert len({colour for colour, _ in styles[:20]}) == 20  # the first 20 differ in colour alone
    assert {marker for _, marker in styles} == set(MARKERS)
    assert all(marker != PAPER_STYLE[1] for _, marker in styles)
    assert method_styles(61)[60] == styles[0]  # the pair comes back only at 60


def _overlap(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def test_auc_vs_k_gives_each_of_24_methods_its_own_look_and_keeps_the_legend_off_the_data():
    rng = random.Random(0)
    cells = {}
    for i in range(20):  # fine-tuned rows at K = 64, 128, 256
        for k in ("64", "128", "256"):
            cells[("fashion", f"method-{i:02d}", k)] = _cell(
                "fashion", f"method-{i:02d}", k, [rng.uniform(0.5, 0.8) for _ in range(2)]
            )
    for name, k in (("sasrec", "all"), ("caser", "all"), ("user-like-rate", "0"), ("zeroshot-vanilla", "0")):
        cells[("fashion", name, k)] = _cell("fashion", name, k, [rng.uniform(0.5, 0.8)])
    fig = auc_vs_k_figure("fashion", cells)
    [ax] = fig.axes
    legend = ax.get_legend()
    handles, labels = ax.get_legend_handles_labels()
    looks = []
    for handle in handles:
        line = handle[0] if isinstance(handle, ErrorbarContainer) else handle  # the data line of an errorbar
        looks.append((to_rgba(line.get_color()), line.get_marker(), line.get_linestyle()))
    assert len(handles) == len(labels) == 24 + 1  # every method, and the paper's line for fashion
    assert len(set(looks)) == len(looks)
    assert len({(colour, marker) for colour, marker, _ in looks}) == len(looks)  # not only the line style
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    assert not _overlap(legend.get_window_extent(renderer), ax.get_window_extent(renderer))
    png = auc_vs_k_png("fashion", cells)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert auc_vs_k_png("beauty", cells) is None  # no result for that dataset


def test_run_curves_keep_their_legends_below_the_axes(tmp_path):
    import matplotlib.pyplot as plt

    from reasoningrec import metrics

    captured = {}
    original = metrics._save

    def keep(fig, path):
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        [ax] = fig.axes
        captured[path.name] = _overlap(ax.get_legend().get_window_extent(renderer), ax.get_window_extent(renderer))
        original(fig, path)

    rng = random.Random(1)
    labels = [int(rng.random() < 0.3) for _ in range(300)]
    scores = [min(1.0, max(0.0, rng.gauss(0.6 if y else 0.4, 0.2))) for y in labels]
    try:
        metrics._save = keep
        paths = metrics.write_curves(labels, scores, tmp_path, prefix="test_")
    finally:
        metrics._save = original
        plt.close("all")
    assert captured == {"test_roc.png": False, "test_calibration.png": False}
    assert all((tmp_path / name).read_bytes()[:4] == b"\x89PNG" for name in captured)
    assert paths["roc_png"].endswith("test_roc.png")
