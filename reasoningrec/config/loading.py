"""Reading settings: a params file, overlay files and ``--set key=value`` merged, loaded once per process."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from reasoningrec.config.base import PARAMS_ENV
from reasoningrec.config.params import Params, parse_params
from reasoningrec.errors import ConfigError


def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise ConfigError(f"{path}: params file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if raw is not None and not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(raw).__name__}")
    return raw or {}


def deep_merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``update`` merged in, nested mappings merged key by key."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def parse_assignments(items: Sequence[str]) -> dict[str, Any]:
    """``["train.epochs=3", "records.k_shots=[16, 32]"]`` -> a nested mapping (values read as YAML)."""
    nested: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected key=value (e.g. train.epochs=3)")
        try:
            parsed = yaml.safe_load(value) if value.strip() else None
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {item!r}: the value is not valid YAML: {exc}") from None
        node = nested
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {part!r} is set to a value and a section at once")
        node[parts[-1]] = parsed
    return nested


def read_params(
    path: str | Path,
    overlays: Sequence[str | Path] = (),
    assignments: Sequence[str] = (),
    overrides: Mapping[str, Any] | None = None,
) -> Params:
    """Read and validate one params file (no caching), with overlay files, ``key=value`` assignments
    and an override mapping merged in that order; an error names every source."""
    path = Path(path)
    raw = _read_yaml(path)
    sources = [str(path)]
    for overlay in overlays:
        raw = deep_merge(raw, _read_yaml(Path(overlay)))
        sources.append(str(overlay))
    if assignments:
        raw = deep_merge(raw, parse_assignments(assignments))
        sources.append("--set " + " ".join(assignments))
    if overrides:
        raw = deep_merge(raw, overrides)
        sources.append(f"overrides {dict(overrides)}")
    return parse_params(raw, " + ".join(sources))


@lru_cache(maxsize=8)
def _cached(path: str, overlays: tuple[str, ...], assignments: tuple[str, ...]) -> Params:
    return read_params(path, overlays, assignments)


def params_path(path: str | Path | None = None) -> Path:
    """The settings file of this run: ``path``, else ``$REASONINGREC_PARAMS``, else ``./params.yaml``."""
    return Path(path or os.environ.get(PARAMS_ENV) or "params.yaml")


def load_params(
    path: str | Path | None = None, overlays: Sequence[str | Path] = (), assignments: Sequence[str] = ()
) -> Params:
    """The settings of this run (:func:`params_path`), loaded once per process per combination."""
    return _cached(
        str(params_path(path).resolve()), tuple(str(Path(o).resolve()) for o in overlays), tuple(assignments)
    )
