"""The pipeline, defined once: its stages, and the plan of stage calls every runner executes.

A :class:`Stage` says what one step is: its entry point (a package function), the files it reads and
writes in the dataset's work folder, the ``params.yaml`` keys and the code its result depends on,
and whether it is a validation gate. :func:`plan` turns the settings into the ordered
:class:`Call` list for one dataset (which texts are imported or generated, which (method, K, seed)
runs). The CLI commands, the main job (``reasoningrec run``), the Prefect flows, the experiment grid
and the generated ``dvc.yaml`` all iterate this plan; :mod:`reasoningrec.completion` decides, with
one rule, whether a call is up to date.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from reasoningrec.config.modelling import TrainConfig
from reasoningrec.errors import ConfigError, MissingDependency

if TYPE_CHECKING:
    from reasoningrec.config import Params

Phase = Literal["data", "synthesis", "training"]
Kind = Literal["data", "llm", "gpu"]  # how orchestrators schedule a stage (retries, GPU tags)
PHASES: tuple[str, ...] = ("data", "synthesis", "training")

# Settings that change what an LLM writes (server addresses and concurrency change only where).
LLM_KEYS = ("llm.backend", "llm.model", "llm.quantization", "llm.dtype", "llm.decode")
# The training settings of a run: all but train.processes, which spreads the same global batch over
# more devices (llm.devices, likewise, is in no stage's keys: it changes where replies are made).
TRAIN_KEYS = tuple(f"train.{name}" for name in TrainConfig.model_fields if name != "processes")
DATASET = "datasets.{dataset}"
_DATA = ("interactions.parquet", "items.parquet")
_CORE = ("reasoningrec/config", "reasoningrec/io.py", "reasoningrec/errors.py")
_SYNTHESIS_CODE = (
    *_CORE,
    "reasoningrec/synthesis",
    "reasoningrec/llm",
    "reasoningrec/prompts",
    "reasoningrec/models.py",
    "reasoningrec/answer.py",
)
_MODEL_CODE = (
    *_CORE,
    "reasoningrec/experiment.py",
    "reasoningrec/training",
    "reasoningrec/scoring.py",
    "reasoningrec/explanations",
    "reasoningrec/chat.py",
    "reasoningrec/models.py",
    "reasoningrec/answer.py",
    "reasoningrec/evaluation.py",
    "reasoningrec/metrics.py",
    "reasoningrec/predictions.py",
    "reasoningrec/methods.py",
    "reasoningrec/fingerprint.py",
    "reasoningrec/llm/static_decode.py",
)


@dataclass(frozen=True)
class Stage:
    """One step of the pipeline.

    ``inputs``/``outputs`` are paths in the dataset's work folder; ``{method}``, ``{k_shots}`` and
    ``{seed}`` are filled from a call's options. ``summary`` is the output that holds the stage's
    JSON summary (its metrics). ``sections`` are dotted ``params.yaml`` keys (``{dataset}`` filled
    in); ``code`` the project paths whose files shape the result. A ``gate`` stage validates: the
    stages after it run only on data it passed.
    """

    name: str
    entry: str  # "package.module:function"
    phase: Phase
    kind: Kind
    command: str  # the CLI command that runs one call (options filled in)
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    summary: str | None = None
    sections: tuple[str, ...] = ()
    code: tuple[str, ...] = ()
    raw_input: bool = False
    gate: bool = False
    shard_key: str | None = None
    persist: bool = False  # resumable LLM work: DVC keeps the outputs between runs
    fixed: Mapping[str, Any] = field(default_factory=dict)  # keyword arguments always passed


STAGES: dict[str, Stage] = {
    s.name: s
    for s in (
        Stage(
            "ingest",
            "reasoningrec.data.ingest:run_ingest",
            "data",
            "data",
            "ingest -d {dataset}",
            outputs=(*_DATA, "ingest.json"),
            summary="ingest.json",
            sections=("ingest", DATASET, "validate.rating_min", "validate.rating_max"),
            code=(*_CORE, "reasoningrec/data"),
            raw_input=True,
        ),
        Stage(
            "validate_interactions",
            "reasoningrec.validation:run_validation",
            "data",
            "data",
            "validate -d {dataset} --stage interactions",
            inputs=(*_DATA, "ingest.json"),
            outputs=("validation/validate_interactions.json",),
            summary="validation/validate_interactions.json",
            sections=("validate", DATASET),
            code=(*_CORE, "reasoningrec/validation.py", "reasoningrec/validation_report.py", "expectations"),
            gate=True,
            fixed={"stage": "interactions"},
        ),
        Stage(
            "prepare",
            "reasoningrec.data.prepare:run_prepare",
            "data",
            "data",
            "prepare -d {dataset}",
            inputs=("interactions.parquet",),
            outputs=("samples.parquet", "item_reviews.parquet", "prepare.json"),
            # raw: the paper population (prepare.population) reads the authors' records.
            summary="prepare.json",
            sections=("prepare", DATASET),
            code=(*_CORE, "reasoningrec/data"),
            raw_input=True,
        ),
        Stage(
            "validate_samples",
            "reasoningrec.validation:run_validation",
            "data",
            "data",
            "validate -d {dataset} --stage samples",
            inputs=("samples.parquet", "interactions.parquet"),
            outputs=("validation/validate_samples.json",),
            summary="validation/validate_samples.json",
            sections=("validate", DATASET, "prepare"),
            code=(*_CORE, "reasoningrec/validation.py", "reasoningrec/validation_report.py", "expectations"),
            gate=True,
            fixed={"stage": "samples"},
        ),
        Stage(
            "import_texts",
            "reasoningrec.importer.stage:run_import",
            "synthesis",
            "data",
            "import-texts -d {dataset}",
            inputs=("samples.parquet", "items.parquet"),
            outputs=("import.json",),
            summary="import.json",
            sections=(DATASET,),
            code=(*_CORE, "reasoningrec/importer", "reasoningrec/synthesis", "reasoningrec/answer.py"),
            raw_input=True,
        ),
        Stage(
            "describe",
            "reasoningrec.synthesis:run_describe",
            "synthesis",
            "llm",
            "describe -d {dataset}",
            # samples.parquet decides which items are described (those a prompt can show).
            inputs=("items.parquet", "item_reviews.parquet", "samples.parquet"),
            outputs=("descriptions.parquet", "describe.json"),
            summary="describe.json",
            sections=("describe", *LLM_KEYS, f"{DATASET}.domain", "prepare.review_words", "prepare.reviews_per_item"),
            code=_SYNTHESIS_CODE,
            shard_key="item_id",
            persist=True,
        ),
        Stage(
            "profile",
            "reasoningrec.synthesis:run_profile",
            "synthesis",
            "llm",
            "profile -d {dataset}",
            inputs=("samples.parquet", "items.parquet", "descriptions.parquet"),
            outputs=("profiles.parquet", "profile.json"),
            summary="profile.json",
            sections=("profile", *LLM_KEYS, f"{DATASET}.domain"),
            code=_SYNTHESIS_CODE,
            shard_key="user_id",
            persist=True,
        ),
        Stage(
            "reason",
            "reasoningrec.synthesis:run_reason",
            "synthesis",
            "llm",
            "reason -d {dataset}",
            inputs=("samples.parquet", "items.parquet", "descriptions.parquet", "profiles.parquet"),
            outputs=("reasoning.parquet", "reason.json"),
            summary="reason.json",
            sections=("reason", *LLM_KEYS, f"{DATASET}.domain"),
            code=_SYNTHESIS_CODE,
            shard_key="user_id",
            persist=True,
        ),
        # The feature vocabulary explanation metrics read (PETER's FMR/FCR/DIV), a versioned artifact.
        Stage(
            "vocabulary",
            "reasoningrec.explanations.features:run_vocabulary",
            "synthesis",
            "data",
            "vocabulary -d {dataset}",
            inputs=("items.parquet", "item_reviews.parquet"),
            outputs=("feature_vocabulary.json", "vocabulary.json"),
            summary="vocabulary.json",
            sections=("explanations.vocabulary",),
            code=(*_CORE, "reasoningrec/explanations/features.py", "reasoningrec/explanations/stopwords.txt"),
        ),
        Stage(
            "records",
            "reasoningrec.records.stage:run_records",
            "training",
            "data",
            "records -d {dataset}",
            inputs=("samples.parquet", "items.parquet"),
            outputs=("records.parquet", "records.json"),
            summary="records.json",
            sections=("records", DATASET, "train.base_model"),
            code=(
                *_CORE,
                "reasoningrec/records",
                "reasoningrec/methods.py",
                "reasoningrec/answer.py",
                "reasoningrec/chat.py",
                "reasoningrec/models.py",
                "reasoningrec/prompts/records",
            ),
        ),
        Stage(
            "experiment",
            "reasoningrec.experiment:run_experiment",
            "training",
            "gpu",
            "experiment -d {dataset} --method {method} --k {k_shots} --seed {seed}",
            inputs=("records.parquet", "feature_vocabulary.json"),
            outputs=(
                "runs/{method}-k{k_shots}-s{seed}/predictions.parquet",
                "runs/{method}-k{k_shots}-s{seed}/explanations.parquet",
                "runs/{method}-k{k_shots}-s{seed}/plots/test_roc.png",
                "runs/{method}-k{k_shots}-s{seed}/plots/test_calibration.png",
                "runs/{method}-k{k_shots}-s{seed}/metrics.json",
            ),
            summary="runs/{method}-k{k_shots}-s{seed}/metrics.json",
            sections=(*TRAIN_KEYS, "evaluate", "explanations", "llm.batch_size"),
            code=_MODEL_CODE,
        ),
        # AUC against K of the plan's runs (no MLflow needed): the figure DVC shows beside each run's curves.
        Stage(
            "compare",
            "reasoningrec.report.compare:run_compare",
            "training",
            "data",
            "compare -d {dataset}",
            outputs=("compare/auc_vs_k.png", "compare/compare.json"),
            summary="compare/compare.json",
            code=(*_CORE, "reasoningrec/report"),
        ),
        Stage(
            "baselines",
            "reasoningrec.baselines:run_baselines",
            "training",
            "gpu",
            "baselines -d {dataset}",
            inputs=("samples.parquet", "interactions.parquet"),
            outputs=("baselines/baselines.json",),
            summary="baselines/baselines.json",
            sections=("baselines", "prepare.like_threshold", f"{DATASET}.history_len"),
            code=(*_CORE, "reasoningrec/baselines", "reasoningrec/metrics.py", "reasoningrec/predictions.py"),
        ),
    )
}


def stage(name: str) -> Stage:
    """The stage called ``name``, or a :class:`ConfigError` listing the known ones."""
    try:
        return STAGES[name]
    except KeyError:
        raise ConfigError(f"unknown stage {name!r} (known: {', '.join(STAGES)})") from None


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
    calls = [Call(STAGES[name], dataset) for name in ("ingest", "validate_interactions", "prepare", "validate_samples")]
    texts = text_stages(params, dataset)
    for name in texts:
        if name == "import_texts":
            calls.append(Call(STAGES[name], dataset, outputs=imported_outputs(params, dataset)))
        else:
            calls.append(Call(STAGES[name], dataset))
    if "import_texts" in texts and params.describe.limit:
        # A sample of items described by llm.model beside the imported texts (records keep the imported).
        calls.append(Call(STAGES["describe"], dataset, subdir="llm"))
    produced = {name for call in calls for name in call.output_names()}
    text_files = ("descriptions.parquet", "profiles.parquet", "reasoning.parquet")
    vocabulary_inputs = (*STAGES["vocabulary"].inputs, *(n for n in ("descriptions.parquet",) if n in produced))
    calls.append(Call(STAGES["vocabulary"], dataset, inputs=vocabulary_inputs))
    records_inputs = (*STAGES["records"].inputs, *(n for n in text_files if n in produced))
    calls.append(Call(STAGES["records"], dataset, inputs=records_inputs))
    runs = [
        Call(STAGES["experiment"], dataset, (("method", m), ("k_shots", k), ("seed", s)))
        for m, k, s in experiment_runs(params, methods, k_shots, seeds)
    ]
    calls += runs
    if runs:
        metrics = tuple(run.summary_name() for run in runs)
        calls.append(Call(STAGES["compare"], dataset, (("runs", tuple(r.name for r in runs)),), inputs=metrics))
    if baselines if baselines is not None else params.pipeline.baselines:
        calls.append(Call(STAGES["baselines"], dataset))
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
    wanted = Call(STAGES[stage_name], dataset, tuple(options.items()), subdir=subdir)
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


def markdown_table() -> str:
    """The stages as a Markdown table (docs/architecture.md embeds it; a test keeps them equal)."""
    lines = ["| stage | phase | entry point | reads | writes | CLI |", "|---|---|---|---|---|---|"]
    for s in STAGES.values():
        reads = ", ".join([*(f"`{n}`" for n in s.inputs), *(["raw files"] if s.raw_input else [])])
        writes = ", ".join(f"`{n}`" for n in s.outputs)
        kind = " (gate)" if s.gate else ""
        reads = reads or "the plan's run summaries"
        lines.append(
            f"| `{s.name}`{kind} | {s.phase} | `{s.entry}` | {reads} | {writes} | `reasoningrec {s.command}` |"
        )
    return "\n".join(lines)
