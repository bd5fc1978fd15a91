"""The pipeline stages as data: what each reads, writes, and which settings it depends on.

One table drives the Prefect tasks (what to call, what to hash for the cache key, how to shard) and
mirrors the ``deps``/``params``/``outs`` of ``dvc.yaml`` (a test keeps the two in step).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reasoningrec.config import Params, parse_params, read_params
from reasoningrec.errors import ConfigError, MissingDependency


@dataclass(frozen=True)
class StageSpec:
    """One stage: its entry point and the files and settings its result depends on."""

    name: str
    entry: str  # "package.module:function", per the stage entry points in docs/architecture.md
    inputs: tuple[str, ...] = ()  # files (or folders) in the dataset's work dir
    # Files that must exist for a cached result to be reused; "{option}" is filled from the call's options.
    outputs: tuple[str, ...] = ()
    sections: tuple[str, ...] = ()  # dotted params keys; "{dataset}" is replaced by the dataset name
    raw_input: bool = False  # also depends on the dataset's raw files under the data dir
    shard_key: str | None = None  # column the stage can be fanned out on
    fixed: Mapping[str, Any] = field(default_factory=dict)  # keyword arguments always passed
    takes_out_dir: bool = True

    def module(self) -> str:
        return self.entry.split(":", 1)[0]


# Semantic LLM settings: server addresses and concurrency change where text is generated, not what.
LLM_KEYS = ("llm.backend", "llm.model", "llm.quantization", "llm.dtype")
DATASET = "datasets.{dataset}"
_DATA = ("interactions.parquet", "items.parquet")

STAGES: dict[str, StageSpec] = {
    spec.name: spec
    for spec in (
        StageSpec(
            "ingest", "reasoningrec.data.ingest:run_ingest",
            outputs=(*_DATA, "ingest.json"), sections=("ingest", DATASET), raw_input=True,
        ),
        StageSpec(
            "validate_interactions", "reasoningrec.validation:run_validation",
            inputs=_DATA, outputs=("validation/validate_interactions.json",),
            sections=("validate", DATASET), fixed={"stage": "interactions"},
        ),
        StageSpec(
            "prepare", "reasoningrec.data.prepare:run_prepare",
            inputs=("interactions.parquet",), outputs=("samples.parquet", "item_reviews.parquet", "prepare.json"),
            sections=("prepare", DATASET),
        ),
        StageSpec(
            "validate_samples", "reasoningrec.validation:run_validation",
            inputs=("samples.parquet", "interactions.parquet"), outputs=("validation/validate_samples.json",),
            sections=("validate", DATASET), fixed={"stage": "samples"},
        ),
        StageSpec(
            "import_texts", "reasoningrec.importer:run_import",
            inputs=("samples.parquet", "items.parquet"), outputs=("import.json",),
            sections=(DATASET,), raw_input=True,
        ),
        StageSpec(
            "describe", "reasoningrec.synthesis:run_describe",
            # samples.parquet decides which items are described (those a prompt can show).
            inputs=("items.parquet", "item_reviews.parquet", "samples.parquet"),
            outputs=("descriptions.parquet", "describe.json"),
            sections=("describe", *LLM_KEYS), shard_key="item_id",
        ),
        StageSpec(
            "profile", "reasoningrec.synthesis:run_profile",
            inputs=("samples.parquet", "items.parquet", "descriptions.parquet"),
            outputs=("profiles.parquet", "profile.json"),
            sections=("profile", *LLM_KEYS), shard_key="user_id",
        ),
        StageSpec(
            "reason", "reasoningrec.synthesis:run_reason",
            inputs=("samples.parquet", "items.parquet", "descriptions.parquet", "profiles.parquet"),
            outputs=("reasoning.parquet", "reason.json"),
            sections=("reason", *LLM_KEYS), shard_key="user_id",
        ),
        StageSpec(
            "records", "reasoningrec.records:run_records",
            inputs=("samples.parquet", "items.parquet", "descriptions.parquet", "profiles.parquet",
                    "reasoning.parquet"),
            outputs=("records.parquet", "records.json"), sections=("records", DATASET),
        ),
        StageSpec(
            "experiment", "reasoningrec.experiment:run_experiment",
            inputs=("records.parquet",), outputs=("runs/{method}-k{k_shots}-s{seed}/metrics.json",),
            sections=("train", "evaluate", "tracking"), takes_out_dir=False,
        ),
        StageSpec(
            "baselines", "reasoningrec.baselines:run_baselines",
            inputs=("samples.parquet", "interactions.parquet"), outputs=("baselines/baselines.json",),
            sections=("baselines", "prepare.like_threshold", "tracking"),
        ),
    )
}

LLM_STAGES = frozenset(name for name, spec in STAGES.items() if spec.shard_key)
GPU_STAGES = frozenset({"experiment", "baselines"})


def stage_spec(name: str) -> StageSpec:
    """The spec of one stage, or an error listing the known stages."""
    try:
        return STAGES[name]
    except KeyError:
        raise ConfigError(f"unknown stage {name!r} (known: {', '.join(STAGES)})") from None


def synthesis_plan(params: Params, dataset: str) -> list[str]:
    """The text stages a dataset needs: imported, generated, or imported descriptions + generated rest."""
    config = params.dataset(dataset)
    if config.source == "paper":
        return ["import_texts"]
    if getattr(config, "texts_path", None):
        return ["import_texts", "profile", "reason"]
    return ["describe", "profile", "reason"]


def experiment_grid(
    params: Params,
    methods: list[str] | None = None,
    k_shots: list[int] | None = None,
    seeds: list[int] | None = None,
) -> list[tuple[str, int, int]]:
    """(method, K, seed) of every experiment run: trained methods per K, zero-shot ones at K = 0."""
    from reasoningrec.methods import llm_method

    config = params.orchestration
    chosen = methods if methods is not None else config.methods
    ks = k_shots if k_shots is not None else params.records.k_shots
    grid: list[tuple[str, int, int]] = []
    for method in chosen:
        for k in ks if llm_method(method).fine_tuned else [0]:
            grid.extend((method, k, seed) for seed in (seeds if seeds is not None else config.seeds))
    return grid


def resolve_entry(entry: str) -> Callable[..., Any]:
    """Import ``module:function``; a missing stage module becomes a clear :class:`MissingDependency`."""
    module_name, _, attr = entry.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise MissingDependency(f"stage entry point {entry} is not available: no module {exc.name!r}") from None
        raise
    try:
        return getattr(module, attr)
    except AttributeError:
        raise MissingDependency(f"stage entry point {entry} is not available: {module_name} has no {attr!r}") from None


def entry_source(entry: str) -> Path | None:
    """The source file of a stage's module (hashed into the cache key), without importing it."""
    module_name = entry.split(":", 1)[0]
    try:
        found = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):
        return None
    if found is None or not found.origin or found.origin in ("built-in", "frozen"):
        return None
    return Path(found.origin)


def deep_merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``update`` merged in, nested mappings merged key by key."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_stage_params(params_path: str | Path, overrides: Mapping[str, Any] | None = None) -> Params:
    """Read params fresh from disk (no process cache: a re-run must see edits) and apply overrides."""
    params = read_params(params_path)
    if not overrides:
        return params
    raw = params.model_dump(mode="json", by_alias=True)
    return parse_params(deep_merge(raw, overrides), f"{params_path} + overrides {dict(overrides)}")


def section_values(params: Params, keys: tuple[str, ...], dataset: str) -> dict[str, Any]:
    """The settings a stage depends on, by dotted key (JSON-ready)."""
    raw = params.model_dump(mode="json", by_alias=True)
    values: dict[str, Any] = {}
    for key in keys:
        key = key.format(dataset=dataset)
        node: Any = raw
        for part in key.split("."):
            if not isinstance(node, Mapping) or part not in node:
                raise ConfigError(f"params has no setting {key!r} (needed by a stage's cache key)")
            node = node[part]
        values[key] = node
    return values


def raw_paths(params: Params, dataset: str) -> list[Path]:
    """The raw files/folders a dataset is read from (data path, metadata, imported texts)."""
    config = params.dataset(dataset)
    relative = [config.path, getattr(config, "meta_path", None), getattr(config, "texts_path", None)]
    return [params.data_dir / r for r in relative if r]


def run_stage(
    stage: str,
    params_path: str | Path,
    dataset: str,
    out_dir: str | Path | None = None,
    options: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> dict:
    """Call one stage's entry point and return its JSON summary (``{}`` when it returns none)."""
    spec = stage_spec(stage)
    params = load_stage_params(params_path, overrides)
    params.dataset(dataset)  # an unknown name fails here, listing the known ones
    function = resolve_entry(spec.entry)
    kwargs: dict[str, Any] = {**spec.fixed, **(options or {})}
    if spec.takes_out_dir:
        kwargs["out_dir"] = Path(out_dir) if out_dir is not None else params.work_dir(dataset)
    accepted = inspect.signature(function).parameters
    unknown = [k for k in kwargs if k not in accepted]
    if unknown and not any(p.kind is p.VAR_KEYWORD for p in accepted.values()):
        raise ConfigError(f"stage {stage!r}: {spec.entry} takes no option(s) {unknown}")
    summary = function(params, dataset, **kwargs)
    return dict(summary) if summary else {}
