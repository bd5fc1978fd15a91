"""Reading a stage's Parquet file: the whole frame, its required columns checked, clear errors."""

from __future__ import annotations

import pandas as pd
import pytest

from reasoningrec.data.frames import read_frame
from reasoningrec.errors import DataError
from reasoningrec.io import write_parquet


def test_read_frame_names_the_file_the_fix_and_the_missing_columns(tmp_path):
    path = write_parquet(tmp_path / "items.parquet", pd.DataFrame({"item_id": ["1"], "title": ["a"]}))
    assert list(read_frame(path, ["item_id"], "run prepare").columns) == ["item_id", "title"]
    assert read_frame(tmp_path / "absent.parquet", ["x"], "run prepare", required=False) is None
    with pytest.raises(DataError, match=r"absent.parquet: not found: run prepare first"):
        read_frame(tmp_path / "absent.parquet", ["x"], "run prepare")
    with pytest.raises(DataError, match=r"items.parquet.*missing column\(s\) \['description'\]"):
        read_frame(path, ["item_id", "description"], "run prepare")
    (tmp_path / "broken.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataError, match="broken.parquet"):
        read_frame(tmp_path / "broken.parquet", ["x"], "run prepare")
