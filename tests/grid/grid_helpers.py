"""Shared pieces of the grid tests: the repository's settings, and a tiny Fashion slice overlay."""

from __future__ import annotations

from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
PARAMS = REPO_ROOT / "params.yaml"
PAPER = REPO_ROOT / "configs" / "paper.yaml"


def paper_params():
    """params.yaml with the paper overlay: every method's records, K = 64/128/256."""
    from reasoningrec.config import read_params

    return read_params(PARAMS, [PAPER])


def slice_overlay(path: Path, work: Path, tiny_model_dir: Path, **sections) -> Path:
    """An overlay over params.yaml: 16 Fashion users, the tiny model, one epoch, a few explanations;
    work, cache and models under ``work``; no MLflow (``sections`` add to or replace these)."""
    settings = {
        "paths": {"work_dir": str(work / "work"), "cache_dir": str(work / "cache"), "models_dir": str(work / "models")},
        "prepare": {"max_users": 16},
        "describe": {"limit": None},
        "validate": {"data_docs": False},
        "records": {"k_shots": [4], "valid_size": 6, "max_length": 512, "variants": ["full", "titles"]},
        "train": {
            "base_model": str(tiny_model_dir),
            "epochs": 1,
            "batch_size": 4,
            "grad_accum": 1,
            "precision": "fp32",
            "patience": 1,
        },
        "llm": {"batch_size": 4},
        "evaluate": {"explain_limit": 2, "explain_max_new_tokens": 8},
        "baselines": {"epochs": 1, "hidden": 8, "seeds": [0]},
        "tracking": {"tracking_uri": "none", "experiment": "reasoningrec-test"},
    }
    for name, values in sections.items():
        settings.setdefault(name, {}).update(values)
    path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    return path
