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


def test_stale_temporaries_of_named_outputs_are_removed(tmp_path):
    from reasoningrec.io import remove_stale_temps

    (tmp_path / ".samples.parquet.k3j2.tmp").write_bytes(b"PAR1")
    (tmp_path / ".other.json.x9.tmp").write_text("{")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / ".data_docs_samples.a1.tmp").mkdir()
    (tmp_path / ".hidden").write_text("kept: not a temporary")
    (tmp_path / "samples.parquet").write_bytes(b"real")
    removed = remove_stale_temps(tmp_path, ["samples.parquet"])
    assert [p.name for p in removed] == [".samples.parquet.k3j2.tmp"]
    assert (tmp_path / ".other.json.x9.tmp").exists()  # another stage's, maybe still being written
    assert {p.name for p in remove_stale_temps(tmp_path, recursive=True)} == {
        ".other.json.x9.tmp",
        ".data_docs_samples.a1.tmp",
    }
    assert sorted(p.name for p in tmp_path.rglob("*")) == [".hidden", "samples.parquet", "sub"]
    assert remove_stale_temps(tmp_path / "missing") == []


def test_an_interrupted_write_leaves_a_temporary_that_the_next_sweep_clears(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    from reasoningrec.io import remove_stale_temps

    script = (
        "import sys, time\nfrom reasoningrec.io import atomic_open\n"
        "with atomic_open(sys.argv[1]) as f:\n    f.write('half'); f.flush(); print('ready', flush=True); "
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "out.json")], stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"ready"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(0.05)
    left = [p.name for p in tmp_path.iterdir()]
    assert len(left) == 1 and left[0].startswith(".out.json.") and left[0].endswith(".tmp")
    assert remove_stale_temps(tmp_path, ["out.json"]) and list(tmp_path.iterdir()) == []
