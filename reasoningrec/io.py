"""Atomic file writes: a failure at any point leaves either the old file or none, never half of one.

Every output of the pipeline goes through these helpers: write to a temporary file in the same
folder, flush and fsync, then ``os.replace`` (atomic on POSIX within one file system). A process
killed mid-write leaves its temporary behind (``.<name>.<random>.tmp``, a file or a staging
folder); :func:`remove_stale_temps` clears them, and each stage calls it for its outputs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

TEMP_SUFFIX = ".tmp"
_TEMP_NAME = re.compile(r"^\..+\.(\d+)\.[^.]+\.tmp$")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The writer's pid in the name tells a crashed writer's leftover from a file being written now.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=TEMP_SUFFIX, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual permissions
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary file for writing that replaces ``path`` only when the block succeeds."""
    if "b" in mode:
        encoding = None
    with atomic_path(path) as tmp, open(tmp, mode, encoding=encoding) as handle:
        yield handle


def is_temp_name(name: str, output: str | None = None) -> bool:
    """Whether ``name`` is a temporary of an atomic write (of ``output``, when given)."""
    if not (name.startswith(".") and name.endswith(TEMP_SUFFIX)):
        return False
    return output is None or name.startswith(f".{output}.")


def remove_stale_temps(
    folder: str | Path, outputs: Iterable[str] | None = None, *, recursive: bool = False
) -> list[Path]:
    """Delete the temporaries that interrupted atomic writes left in ``folder``; return what went.

    ``outputs`` (file or folder names in ``folder``) limits the sweep to those outputs' temporaries,
    which is safe while other stages write other files of the same folder. Without it every
    ``.*.tmp`` goes. ``recursive`` sweeps subfolders. A temporary whose writer (its pid is in the
    name) is still running is left alone, whatever the filter.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    names = list(outputs) if outputs is not None else None
    removed = []
    entries = folder.rglob(".*") if recursive else folder.glob(".*")
    for entry in sorted(entries):
        if not (is_temp_name(entry.name) if names is None else any(is_temp_name(entry.name, n) for n in names)):
            continue
        writer = _TEMP_NAME.match(entry.name)
        if writer and _alive(int(writer.group(1))):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: str | Path, data: Any) -> Path:
    """Write ``data`` as indented, key-sorted JSON, atomically."""
    with atomic_open(path) as handle:
        json.dump(data, handle, indent=2, sort_keys=True, default=json_default)
        handle.write("\n")
    return Path(path)


def write_parquet(path: str | Path, frame) -> Path:
    """Write a pandas DataFrame to Parquet atomically (no index)."""
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)
    return Path(path)


def read_json(path: str | Path) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
