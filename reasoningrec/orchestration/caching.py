"""Task cache keys from content: the stage's input files' bytes, its settings and its code.

A re-run whose inputs, settings and code are unchanged gets the same key and Prefect reuses the stored
result instead of running the stage again. The key cannot see outputs (they do not exist yet on the
first run, when the result is stored), so the flows ask :func:`outputs_present` first and refresh the
cache when an output has been deleted.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from reasoningrec.io import file_sha256
from reasoningrec.orchestration.stages import (
    entry_source,
    load_stage_params,
    raw_paths,
    section_values,
    stage_spec,
)

# Bump when the key recipe changes so old cache entries are never matched.
KEY_VERSION = "1"


def path_digest(path: Path) -> str:
    """SHA-256 over a file's bytes, or over a folder's relative paths and file bytes (sorted)."""
    if path.is_file():
        return file_sha256(path)
    digest = hashlib.sha256()
    for child in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(child.relative_to(path).as_posix().encode())
        digest.update(file_sha256(child).encode())
    return digest.hexdigest()


def files_digest(paths: Iterable[Path]) -> dict[str, str | None]:
    """Digest per path (``None`` for a missing one, so creating it later changes the key)."""
    return {str(p): (path_digest(p) if p.exists() else None) for p in paths}


def stage_key(
    stage: str,
    params_path: str | Path,
    dataset: str,
    out_dir: str | Path | None = None,
    options: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> str | None:
    """The cache key of one stage call: stage, dataset, options, settings, input bytes and code."""
    spec = stage_spec(stage)
    params = load_stage_params(params_path, overrides)
    work = Path(out_dir) if out_dir is not None else params.work_dir(dataset)
    source = entry_source(spec.entry)
    material = {
        "version": KEY_VERSION,
        "stage": stage,
        "dataset": dataset,
        "options": {**spec.fixed, **(options or {})},
        "settings": section_values(params, spec.sections, dataset),
        # Inputs named relative to the work dir so moving the project keeps its cache valid.
        "inputs": dict(zip(spec.inputs, files_digest(work / n for n in spec.inputs).values(), strict=True)),
        # Raw files by content only: pointing the data dir at another copy keeps the key.
        "raw": list(files_digest(raw_paths(params, dataset)).values()) if spec.raw_input else [],
        "code": path_digest(source) if source is not None and source.exists() else None,
    }
    blob = json.dumps(material, sort_keys=True, default=str).encode()
    return f"{stage}-{dataset}-{hashlib.sha256(blob).hexdigest()[:32]}"


def outputs_present(
    stage: str,
    params_path: str | Path,
    dataset: str,
    out_dir: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    options: Mapping[str, Any] | None = None,
) -> bool:
    """Whether every declared output of a stage call is on disk (a cached result is only valid then)."""
    spec = stage_spec(stage)
    work = Path(out_dir) if out_dir is not None else load_stage_params(params_path, overrides).work_dir(dataset)
    values = {**spec.fixed, **(options or {})}
    return all((work / name.format(**values)).exists() for name in spec.outputs)


def stage_cache_key(context: Any, arguments: Mapping[str, Any]) -> str | None:
    """Prefect ``cache_key_fn``: the key of the stage call described by the task's arguments."""
    return stage_key(**arguments)
