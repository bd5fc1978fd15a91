"""Parsing the authors' SFT records, on a crafted record and on every record of the real files."""

from __future__ import annotations

import json

import pytest
from conftest import data_file
from importer_data import FIGURES, record

from reasoningrec.errors import DataError
from reasoningrec.importer.files import read_records
from reasoningrec.importer.sft import parse_record


def test_parse_record():
    parsed = parse_record(record(), 0)
    assert parsed.profile == "Likes mild soap." and parsed.target_key == "cream"
    assert parsed.label == 1 and parsed.reasoning == "1. Because. 2. So."
    assert " liked soap & co brand" in parsed.text_key
    bare = parse_record(record(profile=False, label="No"), 1)
    assert bare.profile is None and bare.label == 0
    with pytest.raises(DataError, match=r"row 3, field 'output'"):
        parse_record({"input": "x"}, 3, "sft_train.json.gz")


@pytest.mark.data
@pytest.mark.parametrize("dataset", ["beauty", "fashion"])
def test_real_records_and_profiles(dataset):
    folder = data_file(f"reasoningrec-paper/{dataset}")
    counts, noes, n_profiles = FIGURES[dataset]
    for split, count, no in zip(("train", "valid", "test"), counts, noes, strict=True):
        parsed = [parse_record(r, i) for i, r in enumerate(read_records(folder / f"sft_{split}.json.gz"))]
        assert len(parsed) == count and sum(p.label == 0 for p in parsed) == no
        assert all(p.label is not None and p.target_key and p.reasoning for p in parsed)
    assert len(json.loads((folder / "user_profile_summary.json").read_text())) == n_profiles
