"""Each section's rules: unknown keys, ranges and names are errors that say what was expected."""

from __future__ import annotations

import pydantic
import pytest

from reasoningrec.config import (
    DATA_DIR_ENV,
    METRICS_DIR_ENV,
    DatasetConfig,
    Params,
    RecordsConfig,
    TrainConfig,
    ValidateConfig,
    parse_params,
)
from reasoningrec.errors import ConfigError

DATASET = {"source": "movielens100k", "path": "ml-100k"}


@pytest.mark.parametrize(
    "raw, fragment",
    [
        ({"train": {"epochz": 3}}, "train.epochz: Extra inputs are not permitted"),
        ({"nonsense": {}}, "nonsense"),
        ({"train": {"lora_dropout": 1}}, "train.lora_dropout"),
        ({"validate": {"rating_min": 6}}, "rating_min (6) is above rating_max (5)"),
        ({"datasets": {"a b": DATASET}}, "may hold only letters"),
        ({"pipeline": {"datasets": ["ml100k"]}}, "not defined under datasets"),
        ({"pipeline": {"methods": ["sasrec"]}}, "pipeline.methods"),
        ({"records": {"variants": ["nope"]}}, "unknown record variant"),
        ({"datasets": {"x": {**DATASET, "encoding": "klingon"}}}, "unknown text encoding 'klingon'"),
        ({"datasets": {"x": {**DATASET, "columns": {"usr": "u"}}}}, "unknown key(s) ['usr']"),
        ({"prepare": {"population": "some"}}, "prepare.population"),
    ],
)
def test_invalid_settings_name_the_key_and_what_was_expected(raw, fragment):
    with pytest.raises(ConfigError) as caught:
        parse_params(raw, "mine.yaml")
    assert str(caught.value).startswith("mine.yaml: invalid settings:") and fragment in str(caught.value)


def test_sections_are_frozen():
    with pytest.raises(pydantic.ValidationError):
        TrainConfig().epochs = 3  # type: ignore[misc]


def test_defaults_follow_the_paper():
    params = Params()
    assert params.prepare.like_threshold == 3 and params.prepare.profile_items == 15
    assert params.describe.words == 25 and params.profile.words == 100
    assert RecordsConfig().k_shots == [64, 128, 256] and ValidateConfig().data_docs


def test_text_encoding_defaults_by_source():
    assert DatasetConfig(**DATASET).text_encoding() == "latin-1"
    assert DatasetConfig(source="amazon2018", path="x").text_encoding() == "utf-8"
    assert DatasetConfig(**DATASET, encoding="cp1252").text_encoding() == "cp1252"


def test_environment_moves_data_and_metrics(monkeypatch, tmp_path):
    params = parse_params({"datasets": {"ml100k": DATASET}})
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    monkeypatch.delenv(METRICS_DIR_ENV, raising=False)
    assert params.data_dir == params.paths.data_dir and params.metrics_dir == params.paths.metrics_dir
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    monkeypatch.setenv(METRICS_DIR_ENV, str(tmp_path / "m"))
    assert params.data_dir == tmp_path and params.metrics_dir == tmp_path / "m"
    assert params.work_dir("ml100k") == params.paths.work_dir / "ml100k"
    with pytest.raises(ConfigError, match=r"unknown dataset 'beauty' \(params.yaml defines: ml100k\)"):
        params.dataset("beauty")
