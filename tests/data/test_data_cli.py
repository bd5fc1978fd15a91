"""The data commands end to end through the typer app (tiny ML-100K folder)."""

from __future__ import annotations

import yaml
from data_helpers import ml100k
from typer.testing import CliRunner

from reasoningrec.cli import app
from reasoningrec.config import DATA_DIR_ENV


def test_ingest_and_prepare_commands(tmp_path, monkeypatch):
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    rows = "".join(f"{u}\t{i}\t{(u + i) % 5 + 1}\t{880000000 + i}\n" for u in (1, 2) for i in (1, 2, 3))
    ml100k(tmp_path / "raw" / "ml", data=rows)
    params = tmp_path / "params.yaml"
    params.write_text(
        yaml.safe_dump(
            {
                "paths": {"data_dir": str(tmp_path / "raw"), "work_dir": str(tmp_path / "work")},
                "datasets": {"m": {"source": "movielens100k", "path": "ml", "kcore": {"k": 3}}},
            }
        )
    )
    runner = CliRunner()
    result = runner.invoke(app, ["ingest", "-d", "m", "--params", str(params)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "ingest m: 6 ratings, 2 users, 3 items (time: timestamp)"
    # The validation gate: prepare runs only on interactions that passed it.
    result = runner.invoke(app, ["prepare", "-d", "m", "--params", str(params), "--max-users", "1"])
    assert result.exit_code == 1 and "upstream stage validate_interactions is not up to date" in str(result.exception)
    assert "reasoningrec validate -d m --stage interactions" in str(result.exception)
    result = runner.invoke(app, ["validate", "-d", "m", "--params", str(params), "--stage", "interactions"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["prepare", "-d", "m", "--params", str(params), "--max-users", "1"])
    assert result.exit_code == 0, result.output
    assert "prepare m: 1 users" in result.output and "samples train/valid/test 1/1/1" in result.output
    assert (tmp_path / "work" / "m" / "samples.parquet").is_file()
