"""The report's explanation sections: the quality table with the ground-truth row, and examples."""

from __future__ import annotations

import pandas as pd

from reasoningrec.report.cells import RunRecord, labelled_cells
from reasoningrec.report.explanations import explanation_blocks, quality_rows


def _run(seed: int, grounding: float, method: str = "reasoningrec") -> RunRecord:
    metrics = {
        "test_auc": 0.7,
        "expl_grounding": grounding,
        "expl_words": 40.0,
        "expl_fmr": 0.5,
        "parse_failure_rate": 0.0,
        "stated_label_agreement": 1.0,
        "reference_expl_grounding": 0.8,
        "reference_expl_words": 60.0,
    }
    return RunRecord(
        run_id=f"r{seed}{method}",
        dataset="beauty",
        method=method,
        k_shots="256",
        seed=str(seed),
        metrics=metrics,
        params={},
        tags={},
    )


def test_quality_rows_give_mean_and_std_and_the_ground_truth_row():
    cells = labelled_cells([_run(0, 0.6), _run(1, 0.7), _run(2, 0.8), _run(0, 0.4, "tallrec")])
    rows = quality_rows(cells)
    by_method = {row[0]: row for row in rows}
    assert by_method["reasoningrec"][:4] == ["reasoningrec", "256", "3", "0.700 ± 0.100"]
    assert "tallrec" in by_method  # any method with explanation metrics gets a row
    truth = rows[-1]
    assert truth[0].startswith("ground truth") and truth[3] == "0.800 ± 0.000"
    assert truth[-1] == "—"  # consistency columns do not apply to the ground truth


def test_examples_show_the_most_and_least_grounded_explanation():
    frame = pd.DataFrame(
        {
            "user_id": ["u1", "u2"],
            "split": "test",
            "target_item": ["i1", "i2"],
            "grounding": [0.9, 0.1],
            "explanation": ["Liked the rose cream, so yes.", "The user loves moon boots."],
            "history_titles": [["Rose Cream"], ["Lip Balm"]],
            "history_labels": [[1], [0]],
            "cited_history_titles": [["Rose Cream"], []],
            "invented_items": [[], ["Moon Boots"]],
            "features": [["rose"], ["boots"]],
            "ungrounded_features": [[], ["boots"]],
        }
    )
    blocks = explanation_blocks("beauty", labelled_cells([_run(0, 0.5)]), {"reasoningrec": frame})
    tables = [b for b in blocks if b.kind == "table"]
    most, least = tables[1].rows, tables[2].rows
    assert tables[1].header[1] == "most grounded" and dict(most)["explanation"] == "Liked the rose cream, so yes."
    assert dict(most)["prompt's history"] == "liked Rose Cream"
    assert dict(least)["invented items"] == "Moon Boots" and dict(least)["grounding"] == "0.100"
