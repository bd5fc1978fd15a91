"""Ingestion of every source format, and the bad-input errors (hand-built files in tmp_path)."""

from __future__ import annotations

import gzip
import json

import pandas as pd
import pyarrow.parquet as pq
import pytest
from data_helpers import amazon2018_line, gz, make_params, ml100k, write

from reasoningrec.config import DATA_DIR_ENV
from reasoningrec.data.ingest import run_ingest
from reasoningrec.errors import DataError


@pytest.fixture(autouse=True)
def _no_env_data_dir(monkeypatch):
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)


def _ingest(tmp_path, name, config, **sections):
    params = make_params(tmp_path, {name: config}, **sections)
    return run_ingest(params, name), params.work_dir(name)


def _assert_no_outputs(tmp_path):
    work = tmp_path / "work"
    leftovers = [p for p in work.rglob("*") if p.is_file()] if work.exists() else []
    assert leftovers == []


# --- each source -------------------------------------------------------------------------------


def test_ml100k_reads_ratings_items_genres_and_latin1_titles(tmp_path):
    ml100k(tmp_path / "raw" / "ml")
    summary, out = _ingest(tmp_path, "m", {"source": "movielens100k", "path": "ml"})
    inter = pd.read_parquet(out / "interactions.parquet")
    items = pd.read_parquet(out / "items.parquet").set_index("item_id")
    assert summary.rows == 3 and summary.users == 2 and summary.items == 3
    assert summary.rating_histogram == {"3": 1, "4": 1, "5": 1}
    assert summary.time_source == "timestamp"
    schema = pq.read_schema(out / "interactions.parquet")
    assert {f.name: str(f.type) for f in schema} == {
        "user_id": "string",
        "item_id": "string",
        "rating": "double",
        "timestamp": "int64",
        "review": "string",
    }
    assert inter["review"].isna().all()
    assert items.loc["2", "title"] == "Misérables, Les" and items.loc["2", "year"] == 1995
    assert items.loc["2", "genres"] == "Action" and pd.isna(items.loc["1", "genres"])
    assert items.loc["3", "title"] == "unknown" and pd.isna(items.loc["3", "year"])
    assert (out / "ingest.json").is_file()
    assert len(summary.source_files[0]["sha256"]) == 64


def test_ml1m_without_timestamps_uses_file_order(tmp_path):
    folder = tmp_path / "raw" / "ml1m"
    write(folder / "ratings_no_timestamp.dat.gz", gzip.compress(b"2::10::4\n1::10::5\n1::20::2\n"))
    write(folder / "movies.dat", "10::Amélie (2001)::Comedy|Romance\n20::Heat (1995)::Action\n", "latin-1")
    write(folder / "users.dat", "1::F::1::10::48067\n2::M::56::16::70072\n")
    summary, out = _ingest(tmp_path, "m", {"source": "movielens1m", "path": "ml1m"})
    inter = pd.read_parquet(out / "interactions.parquet")
    items = pd.read_parquet(out / "items.parquet").set_index("item_id")
    assert summary.time_source == "file_order"
    assert inter["timestamp"].tolist() == [0, 1, 2]
    assert inter["user_id"].tolist() == ["2", "1", "1"]
    assert items.loc["10", "title"] == "Amélie" and items.loc["10", "year"] == 2001
    assert items.loc["10", "genres"] == "Comedy|Romance"
    assert len(pd.read_parquet(out / "users.parquet")) == 2


def test_ml1m_prefers_real_timestamps(tmp_path):
    folder = tmp_path / "raw" / "ml1m"
    write(folder / "ratings.dat", "1::10::5::978300760\n1::20::3::978302109\n")
    write(folder / "ratings_no_timestamp.dat.gz", gzip.compress(b"9::9::1\n"))
    write(folder / "movies.dat", "10::A (2001)::Comedy\n20::B (1995)::Action\n")
    summary, out = _ingest(tmp_path, "m", {"source": "movielens1m", "path": "ml1m"})
    assert summary.time_source == "timestamp" and summary.rows == 2
    assert pd.read_parquet(out / "interactions.parquet")["timestamp"].tolist() == [978300760, 978302109]


@pytest.mark.parametrize("name", ["r.json.gz", "r.jsonl", "r.json"])
def test_amazon2018_plain_or_gzipped_with_and_without_meta(tmp_path, name):
    lines = "\n".join([amazon2018_line("U1", "A1", 5.0, 100, "nice"), amazon2018_line("U2", "A2", 2.0, 200, ""), ""])
    path = tmp_path / "raw" / name
    gz(path, lines) if name.endswith(".gz") else write(path, lines)
    summary, out = _ingest(tmp_path, "a", {"source": "amazon2018", "path": name})
    inter = pd.read_parquet(out / "interactions.parquet")
    assert inter["review"].tolist() == ["nice", "s"]  # empty reviewText falls back to the summary
    assert pd.read_parquet(out / "items.parquet")["title"].tolist() == ["A1", "A2"]
    assert any("asin stands in" in note for note in summary.notes)

    meta = {
        "asin": "A1",
        "title": "Soap",
        "brand": "Acme",
        "price": "$4.99",
        "description": ["Gentle", "bar"],
        "category": ["Beauty", "Soap"],
    }
    write(tmp_path / "raw" / "meta.json", json.dumps(meta) + "\n")
    summary, out = _ingest(tmp_path, "a", {"source": "amazon2018", "path": name, "meta_path": "meta.json"})
    items = pd.read_parquet(out / "items.parquet").set_index("item_id")
    assert items.loc["A1"].drop("year").to_dict() == {
        "title": "Soap",
        "brand": "Acme",
        "price": "$4.99",
        "genres": "Beauty|Soap",
        "description": "Gentle bar",
    }
    assert items.loc["A2", "title"] == "A2"


def test_amazon2023_milliseconds_and_parent_asin(tmp_path):
    rows = [
        {
            "rating": 4.0,
            "user_id": "U",
            "parent_asin": "P1",
            "asin": "X",
            "text": "ok",
            "title": "t",
            "timestamp": 1588687728923,
        },
        {"rating": 1.0, "user_id": "U", "asin": "P2", "text": "bad", "title": "t", "timestamp": 1588687729000},
    ]
    gz(tmp_path / "raw" / "r.jsonl.gz", "\n".join(json.dumps(r) for r in rows))
    meta = {
        "parent_asin": "P1",
        "title": "Mug",
        "store": "Acme",
        "price": 9.5,
        "description": [],
        "categories": ["Home"],
    }
    write(tmp_path / "raw" / "meta.jsonl", json.dumps(meta))
    _, out = _ingest(tmp_path, "a", {"source": "amazon2023", "path": "r.jsonl.gz", "meta_path": "meta.jsonl"})
    inter = pd.read_parquet(out / "interactions.parquet")
    assert inter["item_id"].tolist() == ["P1", "P2"]
    assert inter["timestamp"].tolist() == [1588687728, 1588687729]
    items = pd.read_parquet(out / "items.parquet").set_index("item_id")
    assert (items.loc["P1", "brand"], items.loc["P1", "price"], items.loc["P1", "genres"]) == ("Acme", "9.5", "Home")
    assert pd.isna(items.loc["P1", "description"])


def test_paper_source_keeps_the_authors_descriptions(tmp_path):
    folder = tmp_path / "raw" / "p"
    write(folder / "ratings.csv", "item,user,rating,timestamp\n0,0,4.0,1155081600\n1,0,2.0,1268697600\n")
    info = {
        "0": {"title": "Soap", "brand": "A", "price": "$1", "description": "\n\nA soap."},
        "1": {"title": "Brush", "description": "A brush."},
    }
    write(folder / "processed_item_information.json", json.dumps(info))
    _, out = _ingest(tmp_path, "p", {"source": "paper", "path": "p"})
    items = pd.read_parquet(out / "items.parquet").set_index("item_id")
    assert items.loc["0", "description"] == "\n\nA soap." and pd.isna(items.loc["1", "brand"])
    assert pd.read_parquet(out / "interactions.parquet")["rating"].tolist() == [4.0, 2.0]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_table_source_maps_columns(tmp_path, fmt):
    frame = pd.DataFrame(
        {
            "userId": [7, 7],
            "movieId": [1, 2],
            "stars": [4.5, 1.0],
            "ts": ["2020-01-01T00:00:00Z", "2020-01-02T00:00:00Z"],
            "txt": ["good", None],
        }
    )
    path = tmp_path / "raw" / f"t.{fmt}"
    path.parent.mkdir(parents=True)
    frame.to_csv(path, index=False) if fmt == "csv" else frame.to_parquet(path)
    items = pd.DataFrame({"movieId": ["1"], "title": ["Heat"], "year": [1995]})
    items.to_csv(tmp_path / "raw" / "items.csv", index=False)
    config = {
        "source": "table",
        "path": f"t.{fmt}",
        "meta_path": "items.csv",
        "columns": {"user": "userId", "item": "movieId", "rating": "stars", "timestamp": "ts", "review": "txt"},
    }
    _, out = _ingest(tmp_path, "t", config)
    inter = pd.read_parquet(out / "interactions.parquet")
    assert inter["timestamp"].tolist() == [1577836800, 1577923200]
    assert inter["review"].iloc[0] == "good" and pd.isna(inter["review"].iloc[1])
    assert inter["user_id"].tolist() == ["7", "7"]
    titles = pd.read_parquet(out / "items.parquet").set_index("item_id")["title"].to_dict()
    assert titles == {"1": "Heat", "2": "2"}


# --- bad input: a DataError naming file + row/field, and no output left behind -----------------


def test_missing_raw_data_names_env_and_download(tmp_path):
    with pytest.raises(DataError) as err:
        _ingest(tmp_path, "ml1m", {"source": "movielens1m", "path": "ml-1m"})
    assert DATA_DIR_ENV in str(err.value) and "reasoningrec download --dataset ml1m" in str(err.value)
    _assert_no_outputs(tmp_path)


def test_missing_file_inside_dataset_folder(tmp_path):
    folder = ml100k(tmp_path / "raw" / "ml")
    (folder / "u.item").unlink()
    with pytest.raises(DataError, match=r"u\.item: file not found"):
        _ingest(tmp_path, "m", {"source": "movielens100k", "path": "ml"})
    _assert_no_outputs(tmp_path)


def test_wrong_delimiter(tmp_path):
    ml100k(tmp_path / "raw" / "ml", data="1,1,5,880000000\n1,2,3,880000100\n")
    with pytest.raises(DataError) as err:
        _ingest(tmp_path, "m", {"source": "movielens100k", "path": "ml"})
    assert err.value.path.endswith("u.data") and err.value.line == 1
    assert "expected 4 fields separated by '\\t', found 1" in str(err.value)
    _assert_no_outputs(tmp_path)


def test_missing_column_paper_csv(tmp_path):
    folder = tmp_path / "raw" / "p"
    write(folder / "ratings.csv", "item,user,timestamp\n0,0,1155081600\n")
    write(folder / "processed_item_information.json", "{}")
    with pytest.raises(DataError) as err:
        _ingest(tmp_path, "p", {"source": "paper", "path": "p"})
    assert err.value.field == "rating" and err.value.line == 1 and "ratings.csv" in err.value.path
    _assert_no_outputs(tmp_path)


def test_missing_column_table(tmp_path):
    write(tmp_path / "raw" / "t.csv", "u,i,r\n1,2,3\n")
    with pytest.raises(DataError) as err:
        _ingest(
            tmp_path,
            "t",
            {
                "source": "table",
                "path": "t.csv",
                "columns": {"user": "u", "item": "i", "rating": "r", "timestamp": "ts"},
            },
        )
    assert err.value.field == "ts"
    _assert_no_outputs(tmp_path)


def test_missing_field_in_json_line(tmp_path):
    bad = json.dumps({"overall": 5.0, "asin": "A1", "unixReviewTime": 1})
    gz(tmp_path / "raw" / "r.json.gz", amazon2018_line() + "\n" + bad + "\n")
    with pytest.raises(DataError) as err:
        _ingest(tmp_path, "a", {"source": "amazon2018", "path": "r.json.gz"})
    assert (err.value.line, err.value.field) == (2, "reviewerID")


@pytest.mark.parametrize(
    "rating, problem", [("five", "expected a number, found 'five'"), ("7", "outside the allowed range [1, 5]")]
)
def test_bad_rating(tmp_path, rating, problem):
    ml100k(tmp_path / "raw" / "ml", data=f"1\t1\t5\t880000000\n\n1\t2\t{rating}\t880000100\n")
    with pytest.raises(DataError) as err:
        _ingest(tmp_path, "m", {"source": "movielens100k", "path": "ml"})
    assert (err.value.line, err.value.field) == (3, "rating")  # line numbers count the blank line
    assert problem in str(err.value)
    _assert_no_outputs(tmp_path)


def test_bad_rating_json(tmp_path):
    gz(tmp_path / "raw" / "r.json.gz", amazon2018_line(overall=0.0) + "\n")
    with pytest.raises(DataError, match=r"line 1, field 'overall': value 0 is outside"):
        _ingest(tmp_path, "a", {"source": "amazon2018", "path": "r.json.gz"})


def test_unparsable_timestamp(tmp_path):
    ml100k(tmp_path / "raw" / "ml", data="1\t1\t5\t880000000\n1\t2\t3\tyesterday\n")
    with pytest.raises(DataError) as err:
        _ingest(tmp_path, "m", {"source": "movielens100k", "path": "ml"})
    assert (err.value.line, err.value.field) == (2, "timestamp") and "'yesterday'" in str(err.value)
    _assert_no_outputs(tmp_path)


def test_unparsable_timestamp_table(tmp_path):
    write(tmp_path / "raw" / "t.csv", "user,item,rating,timestamp\n1,2,3,2020-01-01\n1,3,4,soon\n")
    with pytest.raises(DataError) as err:
        _ingest(tmp_path, "t", {"source": "table", "path": "t.csv"})
    assert (err.value.line, err.value.field) == (3, "timestamp")


def test_empty_file(tmp_path):
    ml100k(tmp_path / "raw" / "ml", data="")
    with pytest.raises(DataError, match=r"u\.data: file is empty"):
        _ingest(tmp_path, "m", {"source": "movielens100k", "path": "ml"})
    _assert_no_outputs(tmp_path)


def test_truncated_gzip(tmp_path):
    body = gzip.compress(("\n".join(amazon2018_line(f"U{i}") for i in range(500))).encode())
    write(tmp_path / "raw" / "r.json.gz", body[: len(body) // 2])
    with pytest.raises(DataError, match="gzip stream is truncated"):
        _ingest(tmp_path, "a", {"source": "amazon2018", "path": "r.json.gz"})
    _assert_no_outputs(tmp_path)


def test_invalid_json_line(tmp_path):
    write(tmp_path / "raw" / "r.json", amazon2018_line() + "\n{not json\n")
    with pytest.raises(DataError) as err:
        _ingest(tmp_path, "a", {"source": "amazon2018", "path": "r.json"})
    assert err.value.line == 2 and "not valid JSON" in str(err.value)
