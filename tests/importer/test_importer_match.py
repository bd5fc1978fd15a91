"""Matching records to sample rows: the ascending user order, profiles, shifted targets, no guesses."""

from __future__ import annotations

from importer_data import TITLES, record, samples_frame

from reasoningrec.importer.match import match_records
from reasoningrec.importer.sft import parse_record


def test_identical_users_are_told_apart_by_the_ascending_order():
    # Users 10 and 11 have the same window (the authors' Beauty data has such near-duplicates).
    samples = samples_frame(
        [
            ("10", "train", "3", 1, ["1", "2"], [1, 0], []),
            ("11", "train", "3", 1, ["1", "2"], [1, 0], []),
            ("2", "train", "4", 0, ["1", "2"], [1, 0], []),
        ]
    )
    records = [
        parse_record(record(profile=False, target="Lotion", label="No"), 0),
        parse_record(record(profile=False), 1),
        parse_record(record(profile=False), 2),
    ]
    matches = match_records(records, samples, "train", TITLES, {})
    assert [(m.record, samples.user_id[m.sample]) for m in matches] == [(0, "2"), (1, "10"), (2, "11")]
    assert all(m.by_target for m in matches)


def test_profile_and_shifted_target_identify_the_user_but_flag_the_target():
    samples = samples_frame(
        [
            ("1", "train", "3", 1, ["1", "2"], [1, 0], ["5"]),
            ("1", "valid", "4", 1, ["2", "3"], [0, 1], ["5"]),
            ("2", "valid", "5", 1, ["4", "4"], [1, 1], []),
        ]
    )
    # The valid record repeats the training window (target Cream), like the authors' Beauty files.
    records = [parse_record(record(profile=True), 0)]
    matches = match_records(records, samples, "valid", TITLES, {"1": "Likes mild soap."})
    assert len(matches) == 1 and matches[0].by_profile and not matches[0].by_target
    # Without any evidence a record stays unmatched rather than guessed.
    lonely = [parse_record(record(profile=False, target="Nothing", history=("X", "Y")), 0)]
    assert match_records(lonely, samples, "valid", TITLES, {}) == []
