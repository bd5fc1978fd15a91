"""`download` against a throw-away HTTP server on 127.0.0.1 (never the internet)."""

from __future__ import annotations

import hashlib
import http.server
import threading
import zipfile
from functools import partial

import pytest
from data_helpers import make_params, ml100k

from reasoningrec.config import DATA_DIR_ENV
from reasoningrec.data.download import Asset, plan, run_download
from reasoningrec.data.ingest import run_ingest
from reasoningrec.errors import DataError


@pytest.fixture
def server(tmp_path):
    """Serve ``tmp_path/www`` over HTTP; yields the base URL and stops the server afterwards."""
    root = tmp_path / "www"
    root.mkdir()
    handler = partial(_QuietHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def zipped_ml100k(tmp_path, server):
    base, www = server
    folder = ml100k(tmp_path / "src" / "ml-100k")
    with zipfile.ZipFile(www / "ml-100k.zip", "w") as zf:
        for path in folder.iterdir():
            zf.write(path, f"ml-100k/{path.name}")
    members = {name: _sha(folder / name) for name in ("u.data", "u.item")}
    return base, www, members


@pytest.fixture
def params(tmp_path, monkeypatch):
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    return make_params(tmp_path, {"ml100k": {"source": "movielens100k", "path": "ml-100k"}})


def _leftovers(params):
    return sorted(p.name for p in params.data_dir.rglob("*")) if params.data_dir.exists() else []


def test_download_zip_verifies_extracts_and_ingests(params, zipped_ml100k):
    base, www, members = zipped_ml100k
    asset = Asset(f"{base}/ml-100k.zip", "ml-100k", "zip", sha256=_sha(www / "ml-100k.zip"), members=members)
    summary = run_download(params, "ml100k", assets=[asset])
    assert summary.status == "downloaded"
    assert sorted(p.name for p in (params.data_dir / "ml-100k").iterdir()) == ["u.data", "u.genre", "u.item"]
    assert _leftovers(params) == ["ml-100k", "u.data", "u.genre", "u.item"]  # no temp files
    assert run_ingest(params, "ml100k").rows == 3
    assert run_download(params, "ml100k", assets=[asset]).status == "already present"


@pytest.mark.parametrize("where", ["archive", "member"])
def test_checksum_mismatch_leaves_nothing(params, zipped_ml100k, where):
    base, www, members = zipped_ml100k
    if where == "archive":
        asset = Asset(f"{base}/ml-100k.zip", "ml-100k", "zip", sha256="0" * 64)
    else:
        asset = Asset(f"{base}/ml-100k.zip", "ml-100k", "zip", members={**members, "u.data": "f" * 64})
    with pytest.raises(DataError, match="checksum mismatch"):
        run_download(params, "ml100k", assets=[asset])
    assert _leftovers(params) == []


def test_plain_file_and_http_error(params, server):
    base, www = server
    (www / "All_Beauty_5.json.gz").write_bytes(b"payload")
    run_download(params, "ml100k", assets=[Asset(f"{base}/All_Beauty_5.json.gz", "amazon/x.json.gz")])
    assert (params.data_dir / "amazon/x.json.gz").read_bytes() == b"payload"
    with pytest.raises(DataError, match=r"download failed.*REASONINGREC_DATA_DIR"):
        run_download(params, "ml100k", assets=[Asset(f"{base}/missing.zip", "other", "zip")])
    assert not (params.data_dir / "other").exists()


def test_plan_urls(params):
    from reasoningrec.config import parse_params

    p = parse_params(
        {
            "datasets": {
                "a": {"source": "amazon2018", "path": "amazon2018/AMAZON_FASHION_5.jsonl.gz"},
                "b": {"source": "paper", "path": "reasoningrec-paper/beauty"},
                "m": {"source": "movielens1m", "path": "ml-1m"},
            }
        }
    )
    assert plan(p.dataset("a"))[0].url.endswith("/categoryFilesSmall/AMAZON_FASHION_5.json.gz")
    assert [a.target for a in plan(p.dataset("b"))] == [
        "reasoningrec-paper/beauty/ratings.csv",
        "reasoningrec-paper/beauty/processed_item_information.json",
    ]
    assert plan(p.dataset("m"))[0].url == "https://files.grouplens.org/datasets/movielens/ml-1m.zip"
