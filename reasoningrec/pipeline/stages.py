"""The stage table: what each step of the pipeline is (entry point, files read and written, the
settings and code its result depends on, whether it is a validation gate), defined once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from reasoningrec.config.modelling import TrainConfig
from reasoningrec.errors import ConfigError

if TYPE_CHECKING:
    pass

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
