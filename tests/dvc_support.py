"""A throw-away git + DVC project running the real pipeline: the package's code, a params.yaml for the
tiny model and small sizes, and the dvc.yaml generated from it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def run(args: list[str], cwd: Path, env: dict, timeout: int = 600) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def ran(output: str) -> set[str]:
    """The stages a `dvc repro` / `dvc exp run` output says it ran."""
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")}


def make_project(root: Path, shared_data: Path, tiny_model_dir: Path, **sections) -> tuple[Path, dict]:
    """A git + DVC repository at ``root`` whose dvc.yaml is generated from its own params.yaml."""
    from reasoningrec.config import read_params
    from reasoningrec.dvc_stages import render_dvc_yaml

    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "reasoningrec", root / "reasoningrec", ignore=ignore)
    shutil.copytree(REPO / "expectations", root / "expectations", ignore=ignore)
    raw = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    raw["paths"]["data_dir"] = str(shared_data)
    raw["validate"]["data_docs"] = False  # HTML reports are not what this tests
    raw["llm"].update(backend="hf", model=str(tiny_model_dir), batch_size=4)
    raw["describe"].update(max_new_tokens=4, limit=2)
    raw["records"].update(k_shots=[8], valid_size=8, max_length=512)
    raw["pipeline"].update(k_shots=[8])
    raw["train"].update(base_model=str(tiny_model_dir), batch_size=4, grad_accum=1, epochs=1)
    raw["evaluate"].update(explain_limit=2, explain_max_new_tokens=4)
    raw["tracking"].update(tracking_uri="none")
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    (root / "dvc.yaml").write_text(render_dvc_yaml(read_params(root / "params.yaml")), encoding="utf-8")
    (root / ".gitignore").write_text("/data/\n/cache/\n/models/\n", encoding="utf-8")
    env = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "DVC_NO_ANALYTICS": "1",
        "GIT_AUTHOR_NAME": "test",
        "GIT_AUTHOR_EMAIL": "test@example.org",
        "GIT_COMMITTER_NAME": "test",
        "GIT_COMMITTER_EMAIL": "test@example.org",
    }
    for name in ("REASONINGREC_PARAMS", "REASONINGREC_DATA_DIR", "REASONINGREC_METRICS_DIR"):
        env.pop(name, None)
    run(["git", "init", "-q"], root, env)
    run([str(BIN / "dvc"), "init", "-q"], root, env)
    run([str(BIN / "dvc"), "config", "core.analytics", "false"], root, env)
    # As in the repository's .dvc/config: `dvc plots show` writes a page that loads nothing remote.
    run([str(BIN / "dvc"), "config", "plots.html_template", "../reasoningrec/webassets/dvc_plots.html"], root, env)
    return root, env
