"""Atomic writes: a failure leaves the previous file intact and no temporary file behind."""

import os

import pandas as pd
import pytest

from reasoningrec.io import atomic_open, read_json, write_json, write_parquet


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "out.json"
    write_json(target, {"v": 1})
    with pytest.raises(RuntimeError), atomic_open(target) as handle:
        handle.write('{"v": 2')
        raise RuntimeError("killed mid-write")
    assert read_json(target) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_outputs_get_umask_permissions_not_mkstemp_0600(tmp_path):
    path = write_parquet(tmp_path / "f.parquet", pd.DataFrame({"a": [1, 2]}))
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask
    assert pd.read_parquet(path)["a"].tolist() == [1, 2]
