"""Ingest -> prepare through Dask dataframes gives what the single-machine stages give (real ML-100K rows)."""

from __future__ import annotations

import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import data_file
from data_helpers import make_params

from reasoningrec.config import DATA_DIR_ENV

pytest.importorskip("dask.dataframe")


@pytest.fixture
def table(tmp_path, monkeypatch):
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    ratings = pd.read_csv(
        data_file("ml-100k/u.data"), sep="\t", names=["user", "item", "rating", "timestamp"], dtype=str, nrows=20_000
    )
    (tmp_path / "raw").mkdir()
    ratings.to_csv(tmp_path / "raw" / "t.csv", index=False)
    return make_params(tmp_path, {"t": {"source": "table", "path": "t.csv", "kcore": {"k": 10}, "history_len": 5}})


def test_dask_ingest_and_prepare_match_the_single_machine_stages(table, tmp_path):
    from reasoningrec.data.distributed import ingest_csv, prepare_samples
    from reasoningrec.data.ingest import run_ingest
    from reasoningrec.data.prepare import run_prepare

    summary = ingest_csv(table, "t", tmp_path / "dask-interactions", blocksize=60_000)
    assert summary["partitions"] > 3
    run_ingest(table, "t")
    run_prepare(table, "t")
    work = table.work_dir("t")
    single = pd.read_parquet(work / "interactions.parquet")
    spread = pd.read_parquet(tmp_path / "dask-interactions")
    assert len(spread) == len(single) == 20_000
    assert spread[["user_id", "item_id", "rating", "timestamp"]].equals(
        single[["user_id", "item_id", "rating", "timestamp"]]
    )
    samples = prepare_samples(table, "t", tmp_path / "dask-interactions", npartitions=4)
    assert samples.num_rows > 300
    assert samples.equals(pq.read_table(work / "samples.parquet"))


def test_dask_messages_name_partition_and_record(table, tmp_path):
    from reasoningrec.data.distributed import ingest_csv
    from reasoningrec.errors import DataError

    path = tmp_path / "raw" / "t.csv"
    lines = path.read_text().splitlines()
    lines[15_000] = lines[15_000].rsplit(",", 2)[0] + ",7,881250949"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"t.csv \(partition \d+\), record \d+, field 'rating': value 7 is outside"):
        ingest_csv(table, "t", tmp_path / "out", blocksize=60_000)
