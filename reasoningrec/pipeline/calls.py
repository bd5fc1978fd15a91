"""The plan: the ordered stage calls of one dataset that every runner executes, and how a call
reaches its stage's entry point."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reasoningrec.errors import ConfigError, MissingDependency

if TYPE_CHECKING:
    from reasoningrec.config import Params

from reasoningrec.pipeline.stages import PHASES, Stage, stage

# --------------------------------------------------------------------------- calls and the plan


@dataclass(frozen=True)
class Call:
    """One execution of a stage for a dataset: its options and, where they differ from the
    stage's, its own inputs/outputs (``subdir``: a sub-folder of the work dir it writes into)."""

    stage: Stage
    dataset: str
    options: tuple[tuple[str, Any], ...] = ()
    inputs: tuple[str, ...] | None = None
    outputs: tuple[str, ...] | None = None
    subdir: str | None = None

    @property
    def name(self) -> str:
        """Unique within a dataset's plan: ``prepare``, ``experiment-reasoningrec-k16-s42``, ``describe-llm``."""
        opts = dict(self.options)
        if self.stage.name == "experiment":
            return f"experiment-{opts['method']}-k{opts['k_shots']}-s{opts['seed']}"
        return self.stage.name + (f"-{self.subdir.strip('./').replace('/', '_')}" if self.subdir else "")

    @property
    def kwargs(self) -> dict[str, Any]:
        return {**self.stage.fixed, **dict(self.options)}

    def _fill(self, names: Sequence[str], folder: str | None) -> tuple[str, ...]:
        values = dict(self.options)
        filled = tuple(name.format(**values) for name in names)
        return tuple(f"{folder}/{n}" for n in filled) if folder else filled

    def input_names(self) -> tuple[str, ...]:
        """Inputs relative to the dataset's work dir."""
        return self._fill(self.inputs if self.inputs is not None else self.stage.inputs, None)

    def output_names(self) -> tuple[str, ...]:
        """Outputs relative to the dataset's work dir."""
        return self._fill(self.outputs if self.outputs is not None else self.stage.outputs, self.subdir)

    def summary_name(self) -> str | None:
        if self.stage.summary is None:
            return None
        return self._fill((self.stage.summary,), self.subdir)[0]

    def command(self) -> str:
        """The CLI command line that runs this call."""
        line = "reasoningrec " + self.stage.command.format(dataset=self.dataset, **dict(self.options))
        return line + (f" --into {self.subdir}" if self.subdir else "")


def text_stages(params: Params, dataset: str) -> list[str]:
    """How a dataset gets its texts: imported (the paper's data), imported descriptions + generated
    profiles and reasoning, or all three generated."""
    config = params.dataset(dataset)
    if config.source == "paper":
        return ["import_texts"]
    if config.texts_path:
        return ["import_texts", "profile", "reason"]
    return ["describe", "profile", "reason"]


def imported_outputs(params: Params, dataset: str) -> tuple[str, ...]:
    """What ``import_texts`` writes for a dataset: every text of the paper's data, else descriptions."""
    if params.dataset(dataset).source == "paper":
        return ("descriptions.parquet", "profiles.parquet", "reasoning.parquet", "import.json")
    return ("descriptions.parquet", "import.json")


def experiment_runs(
    params: Params,
    methods: Sequence[str] | None = None,
    k_shots: Sequence[int] | None = None,
    seeds: Sequence[int] | None = None,
) -> list[tuple[str, int, int]]:
    """(method, K, seed) of each experiment: fine-tuned methods per K and seed, zero-shot once (K = 0,
    first seed: they do not depend on either)."""
    from reasoningrec.methods import llm_method

    config = params.pipeline
    ks = list(k_shots if k_shots is not None else config.k_shots)
    seed_list = list(seeds if seeds is not None else config.seeds)
    runs: list[tuple[str, int, int]] = []
    for name in methods if methods is not None else config.methods:
        spec = llm_method(name)
        if spec.fine_tuned:
            runs.extend((name, k, s) for k in ks for s in seed_list)
        else:
            runs.append((name, 0, seed_list[0]))
    return runs


def plan(
    params: Params,
    dataset: str,
    methods: Sequence[str] | None = None,
    k_shots: Sequence[int] | None = None,
    seeds: Sequence[int] | None = None,
    *,
    baselines: bool | None = None,
    through: str | None = None,
) -> list[Call]:
    """The ordered calls that take one dataset from raw files to experiment runs.

    Methods, K and seeds default to ``pipeline:``; ``through`` stops after a phase (data, synthesis,
    training). Every call's inputs are produced by a call before it (or are raw files).
    """
    params.dataset(dataset)
    if through is not None and through not in PHASES:
        raise ConfigError(f"unknown phase {through!r} (known: {', '.join(PHASES)})")
    calls = [Call(stage(name), dataset) for name in ("ingest", "validate_interactions", "prepare", "validate_samples")]
    texts = text_stages(params, dataset)
    for name in texts:
        if name == "import_texts":
            calls.append(Call(stage(name), dataset, outputs=imported_outputs(params, dataset)))
        else:
            calls.append(Call(stage(name), dataset))
    if "import_texts" in texts and params.describe.limit:
        # A sample of items described by llm.model beside the imported texts (records keep the imported).
        calls.append(Call(stage("describe"), dataset, subdir="llm"))
    produced = {name for call in calls for name in call.output_names()}
    text_files = ("descriptions.parquet", "profiles.parquet", "reasoning.parquet")
    vocabulary_inputs = (*stage("vocabulary").inputs, *(n for n in ("descriptions.parquet",) if n in produced))
    calls.append(Call(stage("vocabulary"), dataset, inputs=vocabulary_inputs))
    records_inputs = (*stage("records").inputs, *(n for n in text_files if n in produced))
    calls.append(Call(stage("records"), dataset, inputs=records_inputs))
    runs = [
        Call(stage("experiment"), dataset, (("method", m), ("k_shots", k), ("seed", s)))
        for m, k, s in experiment_runs(params, methods, k_shots, seeds)
    ]
    calls += runs
    if runs:
        metrics = tuple(run.summary_name() for run in runs)
        calls.append(Call(stage("compare"), dataset, (("runs", tuple(r.name for r in runs)),), inputs=metrics))
    if baselines if baselines is not None else params.pipeline.baselines:
        calls.append(Call(stage("baselines"), dataset))
    if through is not None:
        last = PHASES.index(through)
        calls = [c for c in calls if PHASES.index(c.stage.phase) <= last]
    return calls


def find_call(calls: Sequence[Call], name: str) -> Call:
    """The call called ``name`` in a plan, or a clear error listing the plan's calls."""
    for call in calls:
        if call.name == name:
            return call
    raise ConfigError(f"no call {name!r} in the plan (calls: {', '.join(c.name for c in calls)})")


def call_for(params: Params, dataset: str, stage_name: str, *, subdir: str | None = None, **options: Any) -> Call:
    """The plan's call of one stage (an experiment: of these options, even outside ``pipeline:``),
    or a standalone call with the stage's declared files when the plan has none."""
    from reasoningrec.methods import llm_method

    stage(stage_name)
    if stage_name == "experiment":
        method, k, seed = options["method"], int(options["k_shots"]), int(options["seed"])
        options = {"method": method, "k_shots": k if llm_method(method).fine_tuned else 0, "seed": seed}
        calls = plan(params, dataset, [method], [k], [seed], baselines=False)
    else:
        calls = plan(params, dataset, baselines=True)
    wanted = Call(stage(stage_name), dataset, tuple(options.items()), subdir=subdir)
    return next((c for c in calls if c.name == wanted.name), wanted)


def gates_before(call: Call, calls: Sequence[Call]) -> list[Call]:
    """The validation gates of ``call``'s dataset that come before it in the plan."""
    position = next((i for i, c in enumerate(calls) if c.name == call.name), len(calls))
    return [c for c in calls[:position] if c.stage.gate and c.dataset == call.dataset]


def producers(calls: Sequence[Call]) -> dict[str, Call]:
    """Output file -> the call of the plan that writes it."""
    return {name: call for call in calls for name in call.output_names()}


def shard_call(call: Call, subdir: str) -> Call:
    """The call of one shard of a sharded stage: its inputs and outputs in the shard's folder."""
    return replace(call, subdir=subdir, inputs=tuple(f"{subdir}/{n}" for n in call.input_names()))


# --------------------------------------------------------------------------- entry points


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


def invoke(call: Call, params: Params, extra: Mapping[str, Any] | None = None) -> Any:
    """Call a stage's entry point for ``call`` (its fixed and call options, plus ``extra``)."""
    function = resolve_entry(call.stage.entry)
    kwargs = {**call.kwargs, **(extra or {})}
    accepted = inspect.signature(function).parameters
    if "out_dir" in accepted and "out_dir" not in kwargs:
        work = params.work_dir(call.dataset)
        kwargs["out_dir"] = work / call.subdir if call.subdir else work
        inputs_in_subdir = all(n.startswith(f"{call.subdir}/") for n in call.input_names())
        if call.subdir and "inputs_dir" in accepted and not inputs_in_subdir:
            kwargs["inputs_dir"] = work
    unknown = [k for k in kwargs if k not in accepted]
    if unknown and not any(p.kind is p.VAR_KEYWORD for p in accepted.values()):
        raise ConfigError(f"stage {call.stage.name!r}: {call.stage.entry} takes no option(s) {unknown}")
    return function(params, call.dataset, **kwargs)


def section_values(params: Params, keys: Sequence[str], dataset: str) -> dict[str, Any]:
    """The settings a stage depends on, by dotted key (JSON-ready)."""
    raw = params.model_dump(mode="json", by_alias=True)
    values: dict[str, Any] = {}
    for key in keys:
        key = key.format(dataset=dataset)
        node: Any = raw
        for part in key.split("."):
            if not isinstance(node, Mapping) or part not in node:
                raise ConfigError(f"params has no setting {key!r} (a stage depends on it)")
            node = node[part]
        values[key] = node
    return values


def raw_paths(params: Params, dataset: str) -> list[Path]:
    """The raw files/folders a dataset is read from (data path, metadata, imported texts)."""
    config = params.dataset(dataset)
    relative = [config.path, config.meta_path, config.texts_path]
    return [params.data_dir / r for r in dict.fromkeys(r for r in relative if r)]
