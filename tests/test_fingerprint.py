"""Fingerprinted folders: a folder made with other settings is moved aside, never reused or lost."""

from __future__ import annotations

import pandas as pd

from reasoningrec import fingerprint
from reasoningrec.io import read_json


def test_digest_ignores_key_order_and_sees_every_value():
    assert fingerprint.digest({"a": 1, "b": [1, 2]}) == fingerprint.digest({"b": [1, 2], "a": 1})
    assert fingerprint.digest({"a": 1.0}) != fingerprint.digest({"a": 2.0})
    assert len(fingerprint.digest({})) == 16


def test_frame_digest_sees_content_and_order_not_the_index():
    frame = pd.DataFrame({"prompt_text": ["x", "y"], "label": [1, 0], "other": [5, 6]})
    base = fingerprint.frame_digest(frame, ["prompt_text", "label", "missing"])
    assert fingerprint.frame_digest(frame.set_index(pd.Index([7, 9])), ["prompt_text", "label"]) == base
    assert fingerprint.frame_digest(frame.assign(other=[0, 0]), ["prompt_text", "label"]) == base
    assert fingerprint.frame_digest(frame.assign(label=[1, 1]), ["prompt_text", "label"]) != base
    assert fingerprint.frame_digest(frame.iloc[::-1], ["prompt_text", "label"]) != base


def test_claim_adopts_keeps_and_retires(tmp_path):
    folder = tmp_path / "runs" / "m-k8-s0"
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text('{"auc": 0.7}')
    # A folder from before fingerprints is adopted as it is.
    assert fingerprint.claim(folder, "aaaa", {"lr": 1}) is None
    assert fingerprint.stored(folder) == "aaaa" and (folder / "metrics.json").is_file()
    assert read_json(folder / "fingerprint.json")["settings"] == {"lr": 1}
    # The same settings again: nothing moves.
    assert fingerprint.claim(folder, "aaaa") is None and (folder / "metrics.json").is_file()
    # Other settings: the old folder is parked whole, the new one starts empty.
    parked = fingerprint.claim(folder, "bbbb", {"lr": 2})
    assert parked == tmp_path / "runs" / ".superseded" / "m-k8-s0-aaaa"
    assert (parked / "metrics.json").read_text() == '{"auc": 0.7}' and fingerprint.stored(parked) == "aaaa"
    assert sorted(p.name for p in folder.iterdir()) == ["fingerprint.json"]
    # Back to the first settings: the second folder is parked too, under its own name.
    (folder / "metrics.json").write_text("{}")
    assert fingerprint.claim(folder, "aaaa") == tmp_path / "runs" / ".superseded" / "m-k8-s0-bbbb"
    fingerprint.claim(folder, "bbbb")
    assert (tmp_path / "runs" / ".superseded" / "m-k8-s0-aaaa-2").is_dir()


def test_a_missing_or_damaged_fingerprint_reads_as_none(tmp_path):
    assert fingerprint.stored(tmp_path / "nothing") is None
    (tmp_path / "fingerprint.json").write_text("not json")
    assert fingerprint.stored(tmp_path) is None
