"""Where a run was made: git commit, hardware, and the DVC hashes of its data files."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reasoningrec.config import Params


def git_commit(cwd: str | Path | None = None) -> str:
    """HEAD's commit hash, with ``-dirty`` when tracked files changed; ``unknown`` outside git."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if not head:
        return "unknown"
    return f"{head}-dirty" if status else head


def dvc_hashes(lock_path: str | Path, data_dir: str | Path) -> dict[str, str]:
    """``{"dvc_md5.<file>": md5}`` for every output in ``dvc.lock`` under ``data_dir`` (empty when absent).

    Args:
        lock_path: the ``dvc.lock`` file.
        data_dir: the dataset's work folder, as written in ``dvc.lock`` (relative to the repo root).
    """
    import yaml

    lock_path = Path(lock_path)
    if not lock_path.is_file():
        return {}
    lock = yaml.safe_load(lock_path.read_text(encoding="utf-8")) or {}
    prefix = Path(os.path.normpath(data_dir))
    if prefix.is_absolute():  # dvc.lock paths are relative to the repo root beside it
        try:
            prefix = prefix.relative_to(lock_path.resolve().parent)
        except ValueError:
            return {}
    hashes: dict[str, str] = {}
    for stage in (lock.get("stages") or {}).values():
        for out in (stage or {}).get("outs") or []:
            path = Path(os.path.normpath(str(out.get("path", ""))))
            digest = out.get("md5")
            if not digest or not (path == prefix or prefix in path.parents):
                continue
            relative = path.relative_to(prefix).as_posix() if path != prefix else path.name
            hashes[f"dvc_md5.{relative}"] = str(digest)
    return hashes


def hardware() -> str:
    """``cpu=<model> x<cores>; gpu=<name> x<count>`` (``gpu=none`` without CUDA)."""
    cpu = _cpu_model()
    gpu = "none"
    try:
        import torch

        if torch.cuda.is_available():
            count = torch.cuda.device_count()
            gpu = f"{torch.cuda.get_device_name(0)} x{count}"
    except ImportError:
        pass
    return f"cpu={cpu} x{os.cpu_count() or 1}; gpu={gpu}"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def provenance_tags(params: Params, dataset: str, repo_root: str | Path = ".") -> dict[str, str]:
    """Where a run was made: ``git_commit``, ``hardware`` and the ``dvc_md5.*`` of its data files."""
    return {
        "git_commit": git_commit(repo_root),
        "hardware": hardware(),
        **dvc_hashes(Path(repo_root) / "dvc.lock", params.work_dir(dataset)),
    }
