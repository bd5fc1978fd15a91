"""Records of every variant from the stage frames, and the records stage."""

from __future__ import annotations

import pandas as pd
import pytest
from records_data import stage_inputs

from reasoningrec.methods import VARIANTS
from reasoningrec.records.assemble import build_records
from reasoningrec.records.stage import run_records


def test_build_records_end_to_end(tiny_tokenizer):
    samples, items, descriptions, profiles, reasoning = stage_inputs()
    out, summary = build_records(
        samples,
        items,
        tokenizer=tiny_tokenizer,
        domain="beauty",
        variants=["full", "titles"],
        k_shots=[8, 16],
        valid_size=6,
        max_length=2048,
        seed=1,
        descriptions=descriptions,
        profiles=profiles,
        reasoning=reasoning,
    )
    full = out[out["variant"] == "full"]
    assert summary["splits"] == {
        "train": {"records": 16, "likes": int(full[full.split == "train"].label.sum())},
        "valid": {"records": 6, "likes": int(full[full.split == "valid"].label.sum())},
        "test": {"records": 30, "likes": 20},
    }
    train = full[full["split"] == "train"]
    assert train["in_k8"].sum() == 8 and (train["in_k8"] <= train["in_k16"]).all()
    assert not full.loc[full.split != "train", "in_k16"].any()
    assert full.loc[full.split == "train", "completion_text"].str.startswith("Prediction: ").all()
    assert full["completion_text"].str.contains("\nBecause.").sum() == 22  # train + valid have reasoning
    assert (full.loc[full.split == "test", "reference"].isna()).all()
    assert set(out.columns) >= {"user_id", "split", "label", "variant", "prompt_text", "completion_text", "prompt"}
    # Same users in every variant.
    assert sorted(out[out.variant == "titles"].user_id) == sorted(full.user_id)


def test_build_records_catches_bad_inputs(tiny_tokenizer):
    from reasoningrec.errors import ConfigError, DataError

    samples, items, descriptions, profiles, reasoning = stage_inputs(6)
    kwargs = dict(tokenizer=tiny_tokenizer, domain="beauty", k_shots=[4], valid_size=2, max_length=2048, seed=1)
    with pytest.raises(ConfigError, match="profiles.parquet"):
        build_records(samples, items, variants=["full"], descriptions=descriptions, reasoning=reasoning, **kwargs)
    flipped = reasoning.assign(label=1 - reasoning["label"])
    with pytest.raises(DataError, match="reasoning.parquet.*label"):
        build_records(samples, items, variants=["no-profile"], descriptions=descriptions, reasoning=flipped, **kwargs)
    with pytest.raises(DataError, match="items.parquet"):
        build_records(samples, items.iloc[:3], variants=["titles"], **kwargs)


def test_run_records_writes_parquet_and_summary(tiny_tokenizer, tmp_path, params):
    samples, items, descriptions, profiles, reasoning = stage_inputs(12)
    for name, frame in [
        ("samples", samples),
        ("items", items),
        ("descriptions", descriptions),
        ("profiles", profiles),
        ("reasoning", reasoning),
    ]:
        frame.to_parquet(tmp_path / f"{name}.parquet")
    cfg = params.records.model_copy(update={"k_shots": [4, 8], "valid_size": 4})
    summary = run_records(params.model_copy(update={"records": cfg}), "beauty", tmp_path, tokenizer=tiny_tokenizer)
    written = pd.read_parquet(tmp_path / "records.parquet")
    assert summary.rows == len(written) == 5 * (8 + 4 + 12)
    assert (tmp_path / "records.json").is_file()
    assert set(written["variant"]) == set(VARIANTS)
