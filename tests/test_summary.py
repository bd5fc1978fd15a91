"""Stage summaries: the JSON each stage writes round-trips through its typed summary unchanged, and a
bad file is a DataError that names the file and the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reasoningrec.completion import Outcome
from reasoningrec.data.download import DownloadSummary
from reasoningrec.data.ingest import IngestSummary
from reasoningrec.data.prepare import PrepareSummary
from reasoningrec.errors import DataError
from reasoningrec.explanations.features import VocabularySummary
from reasoningrec.importer.stage import ImportSummary
from reasoningrec.records.stage import RecordsSummary
from reasoningrec.report.compare import CompareSummary
from reasoningrec.synthesis.summary import DescribeSummary, ProfileSummary, ReasonSummary
from reasoningrec.validation_summary import ValidationSummary

PROBLEMS = {"echo": 0, "empty": 0, "refusal": 0, "repetitive": 0, "truncated": 1}
SYNTHESIS = {
    "backend": "embedded",
    "backend_generations": 3,
    "cache_hits": 1,
    "completion_tokens": 48,
    "count": 2,
    "dataset": "ml100k",
    "examples": [{"key": "1", "problem": "truncated", "text": "Movie: Toy Story"}],
    "first_attempt_problems": PROBLEMS,
    "fixed_by_retry": 0,
    "generations": 4,
    "invalid": 1,
    "limit": 2,
    "model": "HuggingFaceTB/SmolLM2-135M-Instruct",
    "problems": PROBLEMS,
    "prompt_tokens": 1170,
    "prompts": 2,
    "retried": 1,
    "seconds": 72.45,
    "tokens_per_s": None,
    "valid": 1,
    "settings": {"max_new_tokens": 16, "seed": 0, "temperature": 0.01, "top_p": 0.9, "words": None},
}

# The JSON each stage writes today (shapes taken from ml100k runs), one example per summary class.
EXAMPLES = {
    IngestSummary: {
        "dataset": "ml100k",
        "declared_counts": ["ratings = 100,000 (u.info)"],
        "ids_merged": {"item_id": 0, "user_id": 2},
        "ids_stripped": {"item_id": 0, "user_id": 3},
        "item_rows": 1682,
        "items": 1682,
        "items_with_metadata_title": 1681,
        "notes": ["a note"],
        "rating_histogram": {"1": 6110, "4.5": 7},
        "reviews": 0,
        "rows": 100000,
        "source": "movielens100k",
        "time_source": "timestamp",
        "source_files": [
            {
                "bom": False,
                "bytes": 1979173,
                "encoding": "iso8859-1",
                "line_endings": "lf",
                "path": "/data/ml-100k/u.data",
                "sha256": "06416e",
            }
        ],
        "timestamp_range": [874724710, 893286638],
        "users": 943,
    },
    PrepareSummary: {
        "dataset": "ml100k",
        "drop_duplicates": True,
        "duplicates_dropped": 0,
        "history_len": 10,
        "interactions": 4342,
        "items": 1038,
        "items_with_reviews": 0,
        "like_threshold": 3.0,
        "max_users": None,
        "kcore": {"items_dropped": 0, "k": 20, "mode": "user", "rows_dropped": 0},
        "population": {"name": "paper", "source": "/data/x", "matched": 12},
        "positives_share": 0.570014,
        "profile_items": 15,
        "samples": {"test": 40, "train": 40, "valid": 40},
        "users": 40,
        "users_dropped": {"fewer_than_3_items": 0, "kcore": 0, "max_users": 903},
        "users_with_profile_items": 40,
    },
    DownloadSummary: {"dataset": "ml100k", "status": "already present", "path": "/data/ml-100k", "files": []},
    ValidationSummary: {
        "dataset": "ml100k",
        "stage": "interactions",
        "success": True,
        "seconds": 1.25,
        "notes": [],
        "flags": {
            "time_source": "timestamp",
            "duplicates_allowed": False,
            "drop_duplicates": True,
            "kcore_mode": "user",
            "population": "all",
        },
        "parameters": {
            "rating_min": 1.0,
            "rating_max": 5.0,
            "timestamp_min": 788918400,
            "k": 20,
            "like_threshold": 3.0,
        },
        "suites": [{"suite": "interactions", "success": True, "rows": 100000, "expectations": []}],
        "results_path": "data/work/ml100k/validation/validate_interactions.json",
        "data_docs": None,
        "data_docs_run": None,
    },
    ImportSummary: {
        "dataset": "ml1m",
        "texts_dir": "/data/reasoningrec-paper/ml1m",
        "source": "imported",
        "model": "authors",
        "written": ["descriptions.parquet"],
        "descriptions": {"count": 3, "empty": 0, "invalid": 0, "problems": PROBLEMS, "examples": []},
    },
    DescribeSummary: {**SYNTHESIS, "stage": "describe", "items_total": 1682, "items_with_reviews": 2},
    ProfileSummary: {
        **SYNTHESIS,
        "stage": "profile",
        "users": 2,
        "users_without_profile_items": 0,
        "descriptions_from": "descriptions.parquet",
    },
    ReasonSummary: {
        **SYNTHESIS,
        "stage": "reason",
        "users": 1,
        "per_split": {"train": 1, "valid": 1, "test": 1},
        "with_profile": 1,
    },
    RecordsSummary: {
        "variants": ["reasoningrec"],
        "splits": {"train": {"records": 40, "likes": 22}},
        "k_shots": {"16": {"records": 16, "likes": 9}},
        "shortened": {"reasoningrec": 1},
        "overlong": {"reasoningrec": 0},
        "max_tokens": 611,
        "excluded_without_reasoning": 0,
        "test_without_reference": 0,
        "rows": 120,
        "reasoning_flagged_invalid": 0,
        "dataset": "ml100k",
        "tokenizer": "HuggingFaceTB/SmolLM2-135M-Instruct",
        "base_model": "HuggingFaceTB/SmolLM2-135M-Instruct",
        "max_length": 1024,
        "seed": 42,
    },
    VocabularySummary: {"dataset": "ml100k", "features": 812, "items": 1682, "digest": "ab12", "method_version": 2},
    CompareSummary: {
        "dataset": "ml100k",
        "runs": 3,
        "cells": {"reasoningrec/k16": {"test_auc": 0.61, "valid_auc": None, "seeds": 2}},
    },
}


def _write(path: Path, data) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.mark.parametrize("kind", list(EXAMPLES), ids=lambda k: k.__name__)
def test_a_summary_round_trips_through_its_file_unchanged(kind, tmp_path):
    data = EXAMPLES[kind]
    summary = kind.model_validate(data)
    assert summary.to_json() == data  # the same keys and values (ints stay ints, floats floats)
    path = summary.write(tmp_path / "summary.json")
    assert kind.read(path) == summary
    assert json.loads(path.read_text(encoding="utf-8")) == data


@pytest.mark.parametrize("kind", list(EXAMPLES), ids=lambda k: k.__name__)
def test_a_file_missing_a_field_names_it(kind, tmp_path):
    missing = next(name for name, field in kind.model_fields.items() if field.is_required())
    path = _write(tmp_path / "bad.json", {k: v for k, v in EXAMPLES[kind].items() if k != missing})
    with pytest.raises(DataError, match=f"not a {kind.__name__}") as caught:
        kind.read(path)
    assert caught.value.field == missing and caught.value.path == str(path)


@pytest.mark.parametrize("kind", list(EXAMPLES), ids=lambda k: k.__name__)
def test_an_unknown_key_is_rejected(kind, tmp_path):
    path = _write(tmp_path / "bad.json", {**EXAMPLES[kind], "surprise": 1})
    with pytest.raises(DataError) as caught:
        kind.read(path)
    assert caught.value.field == "surprise"


def test_a_wrong_type_deep_in_a_summary_names_the_path(tmp_path):
    data = json.loads(json.dumps(EXAMPLES[CompareSummary]))
    data["cells"]["reasoningrec/k16"]["seeds"] = "two"
    with pytest.raises(DataError) as caught:
        CompareSummary.read(_write(tmp_path / "compare.json", data))
    assert caught.value.field == "cells.reasoningrec/k16.seeds"


def test_not_json_and_no_file_are_data_errors(tmp_path):
    path = tmp_path / "ingest.json"
    with pytest.raises(DataError, match="file not found"):
        IngestSummary.read(path)
    path.write_text("{", encoding="utf-8")
    with pytest.raises(DataError, match="not valid JSON"):
        IngestSummary.read(path)


def test_import_summary_leaves_out_the_tables_it_did_not_import():
    summary = ImportSummary(dataset="ml100k", texts_dir="/x", source="imported", model="authors")
    assert summary.to_json() == {
        "dataset": "ml100k",
        "texts_dir": "/x",
        "source": "imported",
        "model": "authors",
        "written": [],
    }


def test_an_outcome_gives_its_record_as_the_stage_summary(tmp_path):
    record = tmp_path / ".completion" / "vocabulary.json"
    outcome = Outcome(call=None, ran=False, summary=EXAMPLES[VocabularySummary], seconds=0.0, record=record)
    assert outcome.summary_as(VocabularySummary).features == 812
    with pytest.raises(DataError) as caught:
        outcome.summary_as(CompareSummary)
    assert caught.value.path == str(record)
