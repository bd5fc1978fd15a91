"""tools/state_archive.py: the work folder carried between machines byte for byte, without the heavy parts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from reasoningrec.io import write_json, write_parquet
from tools.state_archive import ARCHIVE_LIMIT, LOG_KEEP, export_state, import_state, main


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_heavy_parts_stay_behind_and_the_rest_comes_back_byte_for_byte(tmp_path):
    work = tmp_path / "a"
    kept = {
        "beauty/samples.parquet": b"samples",
        "beauty/.completion/records.json": b"{}",
        "beauty/runs/tallrec-k8-s0/metrics.json": b"{}",
        "beauty/runs/tallrec-k8-s0/plots/test_roc.png": b"\x89PNG",
        "beauty/baselines/baselines.json": b"{}",
        ".grid/status.json": b"{}",
    }
    left = (
        "beauty/runs/tallrec-k8-s0/adapter/adapter_model.safetensors",
        "beauty/runs/tallrec-k8-s0/checkpoints/checkpoint-1/x.bin",
        "beauty/runs/.superseded/old/metrics.json",
        "models/embedded/model.safetensors",
        "cache/llm/ab.json",
        "beauty/descriptions.parquet.lock",
    )
    for relative, data in {**kept, **{r: b"heavy" for r in left}}.items():
        (work / relative).parent.mkdir(parents=True, exist_ok=True)
        (work / relative).write_bytes(data)
    (work / ".grid" / "logs" / "beauty").mkdir(parents=True)
    (work / ".grid" / "logs" / "beauty" / "big.log").write_bytes(b"h" * 100 + b"x" * 5_000_000 + b"t" * 100)
    archive = export_state(work, tmp_path / "out" / "state.tar.xz")
    fresh = tmp_path / "b"
    import_state(archive, fresh)
    files = _files(fresh)
    log = files.pop(".grid/logs/beauty/big.log")
    assert files == kept
    assert len(log) <= LOG_KEEP + 100 and log.startswith(b"h" * 100) and log.endswith(b"t" * 100)


def test_data_docs_travel_without_their_vendored_files_and_come_back_whole(tmp_path):
    from reasoningrec.offline_html import make_site_offline

    work, site = tmp_path / "a", tmp_path / "a" / "fashion" / "validation" / "data_docs_samples"
    (site / "static" / "images").mkdir(parents=True)
    (site / "index.html").write_text(
        '<link rel="stylesheet" href="https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css"/>'
    )
    make_site_offline(site)
    before = _files(work)
    archive = export_state(work, tmp_path / "state.tar.xz")
    import tarfile

    with tarfile.open(archive) as tar:
        names = tar.getnames()
    assert "fashion/validation/data_docs_samples/index.html" in names
    assert not [n for n in names if "/static/vendor/" in n]
    fresh = tmp_path / "b"
    import_state(archive, fresh)
    assert _files(fresh) == before


def test_120_runs_fit_one_device_file(tmp_path):
    """~120 runs with 600-1300 test rows (+ valid rows, 100 explanations, two PNG plots) each."""
    rng = np.random.default_rng(0)
    words = np.array(
        [
            "the",
            "user",
            "likes",
            "gentle",
            "scents",
            "and",
            "prefers",
            "creams",
            "shampoo",
            "soap",
            "mist",
            "oil",
            "balm",
            "with",
            "floral",
            "citrus",
            "notes",
            "for",
            "dry",
            "skin",
            "but",
            "avoids",
            "strong",
            "perfumes",
            "because",
            "texture",
            "price",
            "quality",
            "brand",
            "fresh",
        ]
    )
    work = tmp_path / "w"
    rows = {}  # per dataset: the samples every run scores (same order), references up to 150 words
    for dataset, n_test in (("beauty", 1300), ("fashion", 1000), ("ml100k", 600)):
        n = n_test + 300
        rows[dataset] = {
            "user_id": [f"A{rng.integers(1e12)}" for _ in range(n)],
            "split": ["valid"] * 300 + ["test"] * n_test,
            "label": rng.integers(0, 2, n).astype("int8"),
            "target_item": [f"B{rng.integers(1e10)}" for _ in range(n)],
            "reference": pd.Series(
                [" ".join(rng.choice(words, rng.integers(40, 150))) for _ in range(n)], dtype="string"
            ),
        }
    for n in range(120):
        dataset = ("beauty", "fashion", "ml100k")[n % 3]
        run = work / dataset / "runs" / f"m{n}-k64-s0"
        size = len(rows[dataset]["split"])
        explanation = [" ".join(rng.choice(words, 60)) if 300 <= i < 400 else None for i in range(size)]
        frame = pd.DataFrame(
            {**rows[dataset], "p_yes": rng.random(size), "explanation": pd.Series(explanation, dtype="string")}
        )
        write_parquet(run / "predictions.parquet", frame)
        write_json(run / "metrics.json", {"metrics": {"test_auc": 0.6}, "tracking": {"settings": {"x": "y" * 3000}}})
        for plot in ("test_roc.png", "test_calibration.png"):  # PNG bytes hardly compress
            (run / "plots").mkdir(exist_ok=True)
            (run / "plots" / plot).write_bytes(rng.bytes(18_000))
    archive = export_state(work, tmp_path / "state.tar.xz")
    assert archive.stat().st_size < ARCHIVE_LIMIT
    fresh = tmp_path / "fresh"
    import_state(archive, fresh)
    assert _files(fresh) == _files(work)


def test_over_the_limit_the_data_files_go_first_then_the_export_fails(tmp_path):
    rng = np.random.default_rng(0)
    work = tmp_path / "w"
    for relative, size in (
        ("beauty/records.parquet", 400_000),
        ("beauty/runs/r/predictions.parquet", 100_000),
        ("beauty/.completion/records.json", 100),
    ):
        (work / relative).parent.mkdir(parents=True, exist_ok=True)
        (work / relative).write_bytes(rng.bytes(size))  # random bytes: incompressible
    smaller = export_state(work, tmp_path / "smaller.tar.xz", limit=300_000)
    import_state(smaller, tmp_path / "smaller")
    assert set(_files(tmp_path / "smaller")) == {"beauty/runs/r/predictions.parquet", "beauty/.completion/records.json"}
    with pytest.raises(SystemExit, match="MiB"):
        export_state(work, tmp_path / "small.tar.xz", limit=50_000)


def test_importing_a_missing_archive_starts_empty(tmp_path, caplog):
    assert main(["import", str(tmp_path / "none.tar.xz"), str(tmp_path / "work")]) == 0
    assert "not found" in caplog.text and not (tmp_path / "work").exists()
