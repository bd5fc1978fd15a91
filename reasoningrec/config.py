"""Typed settings, loaded once from ``params.yaml``.

Every section of ``params.yaml`` is named after the stage that reads it (the DVC convention), and
each maps to one model below. Unknown keys are rejected so a typo never silently falls back to a
default. Nothing happens at import time: call :func:`load_params`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from reasoningrec import methods as method_table
from reasoningrec.errors import ConfigError

PARAMS_ENV = "REASONINGREC_PARAMS"
DATA_DIR_ENV = "REASONINGREC_DATA_DIR"
METRICS_DIR_ENV = "REASONINGREC_METRICS_DIR"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _checked_llm_methods(value: list[str]) -> list[str]:
    for name in value:
        try:
            method_table.llm_method(name)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
    return value


class PathsConfig(_Section):
    data_dir: Path = Path("data/raw")
    work_dir: Path = Path("data/work")
    cache_dir: Path = Path("cache")
    models_dir: Path = Path("models")
    # Each stage's metrics (numbers only), where git and DVC see them: <metrics_dir>/<dataset>/<call>.json.
    metrics_dir: Path = Path("metrics")


# The generic table source: keys of `datasets.<name>.columns` and the files it reads.
TABLE_COLUMN_KEYS = frozenset({"user", "item", "rating", "timestamp", "review", "item_id"})
TABLE_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".tsv.gz", ".parquet")


class KCoreConfig(_Section):
    k: int = Field(5, ge=1)
    # "user": drop users with fewer than k interactions (the paper's code);
    # "iterative": alternate user and item filtering until both have at least k.
    mode: Literal["user", "iterative"] = "user"


class DatasetConfig(_Section):
    source: Literal["movielens100k", "movielens1m", "amazon2018", "amazon2023", "paper", "table"]
    path: str
    domain: Literal["movies", "beauty", "fashion", "generic"] = "generic"
    kcore: KCoreConfig = KCoreConfig()
    history_len: int = Field(10, ge=1)
    # Drop exact repeats of (user, item, timestamp) before k-core. The paper's processed Beauty and
    # Fashion keep theirs (their sequences and SFT records include them), so those datasets set false.
    drop_duplicates: bool = True
    # Optional extra files (Amazon metadata, item tables) and column names for the generic table source.
    meta_path: str | None = None
    columns: dict[str, str] = {}
    # Folder (under data_dir) of pre-generated texts for `reasoningrec import-texts` (the paper
    # authors' layout); for `source: paper` it defaults to `path`.
    texts_path: str | None = None
    # Text encoding of the raw files (any Python codec name); null = the source's own: latin-1 for
    # MovieLens (the GroupLens originals), UTF-8 for the rest. A UTF-8 byte-order mark is skipped.
    encoding: str | None = None

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str | None) -> str | None:
        if value is not None:
            import codecs

            try:
                codecs.lookup(value)
            except LookupError:
                raise ValueError(f"unknown text encoding {value!r} (e.g. utf-8, latin-1, cp1252, utf-16)") from None
        return value

    @field_validator("columns")
    @classmethod
    def _known_columns(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - TABLE_COLUMN_KEYS)
        if unknown:
            raise ValueError(f"unknown key(s) {unknown}; columns maps {sorted(TABLE_COLUMN_KEYS)} to the file's column names")
        return value

    def text_encoding(self) -> str:
        """The encoding to decode this dataset's text files with."""
        return self.encoding or ("latin-1" if self.source.startswith("movielens") else "utf-8")


class PipelineConfig(_Section):
    """What the main job (``reasoningrec run``), ``dvc repro`` and the Prefect pipeline execute:
    the plan of :func:`reasoningrec.pipeline.plan` over these datasets, methods, K and seeds."""

    datasets: list[str] = []
    methods: list[str] = ["reasoningrec"]
    k_shots: list[int] = [16]
    seeds: list[int] = [42]
    baselines: bool = False  # add the baselines stage to each dataset's plan

    @field_validator("methods")
    @classmethod
    def _llm_methods(cls, value: list[str]) -> list[str]:
        return _checked_llm_methods(value)


class IngestConfig(_Section):
    pass


class ValidateConfig(_Section):
    rating_min: float = 1
    rating_max: float = 5
    timestamp_min: int = 788918400
    timestamp_max: int = 1893456000
    # Datasets whose raw interactions may repeat (user, item, timestamp): for them a repeat is a
    # reported warning (prepare drops or keeps them per datasets.<name>.drop_duplicates), else an error.
    allow_duplicates: list[str] = []
    # Render GX Data Docs (HTML) beside validate_<stage>.json; ~1.5 s per stage.
    data_docs: bool = True
    # Tables up to gx_max_rows rows: Great Expectations checks every row. Larger ones: every row is
    # screened (vectorised) for each expectation's condition and GX checks the screened rows plus a
    # seeded uniform sample of gx_sample_rows others (docs/operations.md, "Validation at scale").
    gx_max_rows: int = Field(2_000_000, ge=1)
    gx_sample_rows: int = Field(100_000, ge=0)

    @model_validator(mode="after")
    def _ranges(self) -> ValidateConfig:
        for low, high in (("rating_min", "rating_max"), ("timestamp_min", "timestamp_max")):
            if getattr(self, low) > getattr(self, high):
                raise ValueError(f"{low} ({getattr(self, low):g}) is above {high} ({getattr(self, high):g}); "
                                 f"expected {low} <= {high}")
        return self


class PrepareConfig(_Section):
    like_threshold: float = 3
    profile_items: int = Field(15, ge=0)
    reviews_per_item: int = Field(10, ge=0)
    review_words: int = Field(50, ge=1)
    seed: int = 42
    # Keep only the first N users (by id) after the k-core filter: a slice of the dataset; null = all.
    max_users: int | None = Field(None, ge=1)
    # Valid/test rows: "all" = every user's own targets (our split); "paper" = the records the paper's
    # authors scored (their users, shown targets and labels; reasoningrec/data/population.py).
    population: Literal["all", "paper"] = "all"


class LLMConfig(_Section):
    backend: Literal["embedded", "hf", "openai"] = "embedded"
    model: str = "HuggingFaceTB/SmolLM2-135M-Instruct"
    quantization: Literal["none", "nf4", "int8"] = "none"
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    batch_size: int = Field(8, ge=1)
    # Local decoding: generate (model.generate) | static (static KV cache, CUDA-graphed step) |
    # auto (static on CUDA without quantization).
    decode: Literal["auto", "generate", "static"] = "auto"
    # Local backends (hf, embedded): 1 = this process; auto = one worker process per visible GPU;
    # N = the first N GPUs (without a GPU: N CPU workers); [0, 2] = those GPUs (reasoningrec/llm/multi.py).
    devices: Annotated[int, Field(ge=1)] | Literal["auto"] | list[Annotated[int, Field(ge=0)]] = 1
    # One OpenAI-compatible server, or several (a list or comma-separated) shared round-robin.
    base_url: str | list[str] = "http://127.0.0.1:8000/v1"
    api_key_env: str = "OPENAI_API_KEY"
    max_concurrency: int = Field(8, ge=1)
    timeout_s: float = Field(120, gt=0)
    max_retries: int = Field(5, ge=0)
    # Exponential backoff between retries: first delay and its ceiling (each with jitter).
    backoff_base_s: float = Field(1.0, ge=0)
    backoff_max_s: float = Field(60.0, ge=0)
    # The longest Retry-After the OpenAI backend waits; a server asking for more fails the request
    # at once (waiting the cap would only be told the same again), keeping every finished reply.
    retry_after_cap_s: float = Field(300.0, ge=0)


class GenerationConfig(_Section):
    temperature: float = Field(0.01, ge=0)
    top_p: float = Field(0.9, gt=0, le=1)
    max_new_tokens: int = Field(256, ge=1)
    words: int | None = None
    seed: int = 0
    # Only the first N items/users (null = all). For a dataset with imported texts, describe.limit
    # items are also described by llm.model into <work_dir>/<dataset>/llm/, beside the imported ones.
    limit: int | None = Field(None, ge=1)


class RecordsConfig(_Section):
    k_shots: list[int] = [64, 128, 256]
    valid_size: int = Field(100, ge=1)
    max_length: int = Field(2048, ge=64)
    seed: int = 42
    # Record variants to build (reasoningrec.methods.VARIANTS says what each needs and writes).
    variants: list[str] = Field(default_factory=lambda: list(method_table.VARIANTS))

    @field_validator("variants")
    @classmethod
    def _known_variants(cls, value: list[str]) -> list[str]:
        unknown = [v for v in value if v not in method_table.VARIANTS]
        if unknown:
            raise ValueError(f"unknown record variant(s) {unknown} (known: {', '.join(method_table.VARIANTS)})")
        return value


class TrainConfig(_Section):
    base_model: str = "embedded"
    lora_r: int = Field(8, ge=1)
    lora_alpha: int = Field(16, ge=1)
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] = ["q_proj", "v_proj"]
    learning_rate: float = Field(3e-4, gt=0)
    epochs: int = Field(10, ge=1)
    batch_size: int = Field(8, ge=1)
    grad_accum: int = Field(1, ge=1)
    patience: int = Field(5, ge=1)
    answer_loss_weight: float = Field(50.0, gt=0)
    # Recompute activations in the backward pass: saves GPU memory, costs ~40% of LoRA throughput
    # (benchmarks: 7B bf16 at 2048 tokens runs in 23 GB without it). Off unless memory is short.
    gradient_checkpointing: bool = False
    # torch.compile the model on CUDA: 15,827 vs 13,375 tokens/s (43.1% vs 36.5% MFU) for a 7B LoRA
    # through the SFTTrainer on an H200, after a ~86 s warm-up. auto: on for base models of at least
    # COMPILE_MIN_PARAMS parameters (where the warm-up is small next to the run), off for SmolLM2.
    compile: bool | Literal["auto"] = "auto"
    precision: Literal["auto", "fp32", "bf16", "nf4", "int8"] = "auto"
    seed: int = 42
    # Data-parallel processes of one training (one per GPU): 1 = this process; N or auto (every
    # visible GPU) = the training launches itself on them (reasoningrec/training/launch.py). The
    # global batch stays batch_size x grad_accum; without a GPU, N CPU processes (gloo) prove the path.
    processes: Annotated[int, Field(ge=1)] | Literal["auto"] = 1


class EvaluateConfig(_Section):
    bertscore_model: str = "embedded"
    bertscore_num_layers: int = Field(6, ge=1)
    explain_max_new_tokens: int = Field(256, ge=1)
    explain_limit: int | None = 50
    explain_decode: Literal["auto", "generate", "static"] = "auto"  # as llm.decode
    # consistent: the explanation is written after the scored label (every one parses and agrees);
    # free: the paper's free generation (parse rate and stated-vs-scored agreement are reported).
    explanations: Literal["consistent", "free"] = "consistent"


class VocabularyConfig(_Section):
    """How the feature vocabulary is extracted from item texts (reasoningrec/explanations/features.py)."""

    # Longest n-gram of adjacent content words that can be a feature (1 = single words, PETER's case).
    max_ngram: int = Field(2, ge=1, le=3)
    # A feature occurs in at least min_df items' texts (drops typos, model numbers) and in at most
    # max_df of them as a share (drops words every item's text uses).
    min_df: int = Field(3, ge=1)
    max_df: float = Field(0.1, gt=0, le=1)
    min_chars: int = Field(3, ge=1)


class MentionConfig(_Section):
    """How item mentions are found in explanations (reasoningrec/explanations/mentions.py)."""

    # An unquoted title match needs this many words and characters (so "Yes" or "Crop Top" never match).
    min_tokens: int = Field(3, ge=1)
    min_chars: int = Field(12, ge=1)
    # The first prefix_tokens words of a longer title also name it ("Pre de Provence Artisanal French ...").
    prefix_tokens: int = Field(5, ge=2)
    # A quoted span of this many words that looks like a title and matches nothing in the prompt is an
    # invented item; longer quotes are taken as quoted sentences, not titles.
    quoted_min_tokens: int = Field(3, ge=1)
    quoted_max_tokens: int = Field(30, ge=1)


class JudgeConfig(_Section):
    """The optional LLM judge of explanations (reasoningrec/explanations/judge.py); off by default."""

    enabled: bool = False
    rubric: str = "v1"  # reasoningrec/prompts/judge/rubric_<rubric>.txt
    llm: LLMConfig = LLMConfig(backend="openai", model="mistralai/Mixtral-8x7B-Instruct-v0.1")
    temperature: float = Field(0.0, ge=0)
    max_new_tokens: int = Field(64, ge=8)
    seed: int = 0
    limit: int | None = Field(50, ge=1)  # explanations judged per run; null = all


class ExplanationsConfig(_Section):
    """Explanation-quality metrics beyond BERTScore (docs/explanations.md)."""

    vocabulary: VocabularyConfig = VocabularyConfig()
    mentions: MentionConfig = MentionConfig()
    # A user trait is evidence of personalisation only when it is specific: a feature of the user's
    # profile/history texts found in at most this share of all items (not "comfort" or "style").
    trait_max_df: float = Field(0.01, gt=0, le=1)
    judge: JudgeConfig = JudgeConfig()


class BaselinesConfig(_Section):
    epochs: int = Field(50, ge=1)
    patience: int = Field(5, ge=1)
    hidden: int = Field(64, ge=1)
    learning_rate: float = Field(1e-3, gt=0)
    seeds: list[int] = [0, 1, 2]
    batch_size: int = Field(256, ge=1)
    dropout: float = Field(0.2, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    # SASRec self-attention blocks and heads (hidden must be divisible by heads).
    layers: int = Field(2, ge=1)
    heads: int = Field(2, ge=1)
    # Caser: number of horizontal filters per height and of vertical filters.
    caser_h_filters: int = Field(16, ge=1)
    caser_v_filters: int = Field(4, ge=1)
    # Items of history fed to SASRec/Caser; null = the dataset's history_len (what the LLM sees).
    max_history: int | None = Field(None, ge=1)
    # Item like-rate heuristic: Beta prior worth this many pseudo-interactions at the global rate.
    item_prior_strength: float = Field(5.0, ge=0)


class ChampionFloors(_Section):
    """What a model version must reach, besides a strictly better validation AUC, to become champion."""

    # Mean grounding of its test explanations (reasoningrec/explanations; null = no floor).
    grounding: float | None = Field(None, ge=0, le=1)
    # Share of its explanations that state a label (1 - parse_failure_rate; null = no floor).
    parse_rate: float | None = Field(None, ge=0, le=1)


class TrackingConfig(_Section):
    tracking_uri: str = "sqlite:///mlflow.db"
    artifact_location: str = "mlartifacts"
    experiment: str = "reasoningrec"
    model_prefix: str = "reasoningrec"
    champion_floors: ChampionFloors = ChampionFloors()


class OrchestrationConfig(_Section):
    """How Prefect runs the stages (DVC ignores this section)."""

    # thread | process (built in) | dask | ray (need prefect-dask / prefect-ray installed)
    task_runner: Literal["thread", "process", "dask", "ray"] = "thread"
    max_workers: int = Field(4, ge=1)
    # LLM synthesis fans out over this many item/user shards (one task each).
    shards: int = Field(1, ge=1)
    # Address of an existing Dask scheduler or Ray cluster; null starts a local one.
    address: str | None = None
    llm_retries: int = Field(3, ge=0)
    retry_backoff_s: float = Field(10, gt=0)


class Params(_Section):
    paths: PathsConfig = PathsConfig()
    datasets: dict[str, DatasetConfig] = {}
    pipeline: PipelineConfig = PipelineConfig()
    ingest: IngestConfig = IngestConfig()
    validate_: ValidateConfig = Field(ValidateConfig(), alias="validate")
    prepare: PrepareConfig = PrepareConfig()
    llm: LLMConfig = LLMConfig()
    describe: GenerationConfig = GenerationConfig(max_new_tokens=64, words=25)
    profile: GenerationConfig = GenerationConfig(words=100)
    reason: GenerationConfig = GenerationConfig(top_p=0.75)
    records: RecordsConfig = RecordsConfig()
    train: TrainConfig = TrainConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    explanations: ExplanationsConfig = ExplanationsConfig()
    baselines: BaselinesConfig = BaselinesConfig()
    tracking: TrackingConfig = TrackingConfig()
    orchestration: OrchestrationConfig = OrchestrationConfig()

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("datasets")
    @classmethod
    def _dataset_names(cls, value: dict[str, DatasetConfig]) -> dict[str, DatasetConfig]:
        for name in value:
            if not name.replace("-", "").replace("_", "").isalnum():
                raise ValueError(f"dataset name {name!r} may hold only letters, digits, '-' and '_'")
        return value

    @model_validator(mode="after")
    def _pipeline_datasets_exist(self) -> Params:
        unknown = [d for d in self.pipeline.datasets if d not in self.datasets]
        if unknown:
            raise ValueError(f"pipeline.datasets: {unknown} not defined under datasets")
        return self

    @property
    def data_dir(self) -> Path:
        """Raw data root: ``$REASONINGREC_DATA_DIR`` when set, else ``paths.data_dir``."""
        env = os.environ.get(DATA_DIR_ENV)
        return Path(env) if env else self.paths.data_dir

    @property
    def metrics_dir(self) -> Path:
        """Where each call's numbers go: ``$REASONINGREC_METRICS_DIR`` when set, else ``paths.metrics_dir``."""
        env = os.environ.get(METRICS_DIR_ENV)
        return Path(env) if env else self.paths.metrics_dir

    def dataset(self, name: str) -> DatasetConfig:
        """The settings of one dataset, or a clear error listing the known names."""
        try:
            return self.datasets[name]
        except KeyError:
            known = ", ".join(sorted(self.datasets)) or "none"
            raise ConfigError(f"unknown dataset {name!r} (params.yaml defines: {known})") from None

    def work_dir(self, dataset: str) -> Path:
        """Folder that holds every pipeline output of one dataset."""
        return self.paths.work_dir / dataset


def parse_params(raw: dict, source: str = "params.yaml") -> Params:
    """Validate a parsed params mapping; errors name the file and the offending key."""
    try:
        return Params.model_validate(raw or {})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"{source}: invalid settings: {problems}") from None


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


def read_params(path: str | Path, overlays: Sequence[str | Path] = (), assignments: Sequence[str] = (),
                overrides: Mapping[str, Any] | None = None) -> Params:
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


def load_params(path: str | Path | None = None, overlays: Sequence[str | Path] = (),
                assignments: Sequence[str] = ()) -> Params:
    """The settings of this run (:func:`params_path`), loaded once per process per combination."""
    return _cached(str(params_path(path).resolve()), tuple(str(Path(o).resolve()) for o in overlays),
                   tuple(assignments))
