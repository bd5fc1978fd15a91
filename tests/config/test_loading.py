"""Reading settings: files, overlays, ``--set`` assignments, their order, errors and the cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from reasoningrec.config import (
    PARAMS_ENV,
    deep_merge,
    load_params,
    params_path,
    parse_assignments,
    read_params,
)
from reasoningrec.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_the_repository_settings_and_overlays_load():
    base = read_params(ROOT / "params.yaml")
    paper = read_params(ROOT / "params.yaml", [ROOT / "configs/paper.yaml"])
    quality = read_params(ROOT / "params.yaml", [ROOT / "configs/paper.yaml", ROOT / "configs/quality.yaml"])
    assert base.pipeline.datasets and set(base.pipeline.datasets) <= set(base.datasets)
    assert paper.prepare.max_users is None != base.prepare.max_users
    assert quality.records.valid_size == 300 and quality.prepare == paper.prepare  # the overlay adds, keeps the rest


def test_overlays_then_assignments_then_overrides_win_in_that_order(tmp_path):
    base = _write(tmp_path / "params.yaml", "train: {epochs: 2, lora_r: 4}\nprepare: {seed: 1}\n")
    overlay = _write(tmp_path / "overlay.yaml", "train: {epochs: 3}\n")
    params = read_params(
        base, [overlay], ["train.epochs=5", "records.k_shots=[16, 32]"], overrides={"prepare": {"seed": 9}}
    )
    assert params.train.epochs == 5 and params.train.lora_r == 4  # nested keys merge, not replace
    assert params.records.k_shots == [16, 32] and params.prepare.seed == 9
    assert read_params(base, [overlay]).train.epochs == 3


def test_deep_merge_merges_mappings_and_replaces_the_rest():
    merged = deep_merge({"a": {"b": 1, "c": [1]}, "d": 1}, {"a": {"c": [2]}, "d": {"e": 2}})
    assert merged == {"a": {"b": 1, "c": [2]}, "d": {"e": 2}}


def test_assignments_read_values_as_yaml():
    assert parse_assignments(["a.b=3", "a.c=null", "d=[1, 2]", "e=x"]) == {
        "a": {"b": 3, "c": None},
        "d": [1, 2],
        "e": "x",
    }


@pytest.mark.parametrize(
    "item, fragment", [("epochs", "expected key=value"), ("=3", "expected key=value"), ("a=[1", "not valid YAML")]
)
def test_bad_assignment_is_a_config_error(item, fragment):
    with pytest.raises(ConfigError, match=fragment):
        parse_assignments([item])


def test_a_key_set_as_value_and_section_is_an_error():
    with pytest.raises(ConfigError, match="set to a value and a section"):
        parse_assignments(["a=1", "a.b=2"])


def test_errors_name_every_source_and_the_key(tmp_path):
    base = _write(tmp_path / "params.yaml", "train: {epochs: 2}\n")
    overlay = _write(tmp_path / "overlay.yaml", "train: {epochz: 3}\n")
    with pytest.raises(ConfigError) as caught:
        read_params(base, [overlay], ["train.lora_r=0"])
    message = str(caught.value)
    assert str(base) in message and str(overlay) in message and "--set train.lora_r=0" in message
    assert "train.epochz" in message and "train.lora_r" in message


@pytest.mark.parametrize("text, fragment", [("train: [1\n", "not valid YAML"), ("- 1\n", "expected a mapping")])
def test_unreadable_files_are_config_errors(tmp_path, text, fragment):
    with pytest.raises(ConfigError, match=fragment):
        read_params(_write(tmp_path / "params.yaml", text))
    with pytest.raises(ConfigError, match="params file not found"):
        read_params(tmp_path / "missing.yaml")


def test_load_params_reads_the_env_file_once(tmp_path, monkeypatch):
    path = _write(tmp_path / "params.yaml", "train: {epochs: 2}\n")
    monkeypatch.setenv(PARAMS_ENV, str(path))
    assert params_path() == path and params_path("other.yaml") == Path("other.yaml")
    first = load_params()
    _write(path, "train: {epochs: 7}\n")
    assert load_params() is first and first.train.epochs == 2  # loaded once per process
    assert load_params(assignments=["train.epochs=4"]).train.epochs == 7 - 3
