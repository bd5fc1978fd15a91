"""Typed settings, loaded once from ``params.yaml``.

Every section of ``params.yaml`` is named after the stage that reads it (the DVC convention), and
each maps to one model below. Unknown keys are rejected so a typo never silently falls back to a
default. Nothing happens at import time: call :func:`load_params`.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from reasoningrec.errors import ConfigError

PARAMS_ENV = "REASONINGREC_PARAMS"
DATA_DIR_ENV = "REASONINGREC_DATA_DIR"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PathsConfig(_Section):
    data_dir: Path = Path("data/raw")
    work_dir: Path = Path("data/work")
    cache_dir: Path = Path("cache")
    models_dir: Path = Path("models")


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


class DemoConfig(_Section):
    """The README's main job: the whole pipeline on a small real slice, sized for a 2-core CPU."""

    dataset: str = "fashion"
    max_users: int = Field(40, ge=1)
    # Items described by the embedded model (the rest keep the imported large-LLM text).
    synthesize_items: int = Field(6, ge=0)
    k_shots: int = Field(16, ge=2)
    valid_size: int = Field(16, ge=2)
    epochs: int = Field(2, ge=1)
    explain_limit: int = Field(4, ge=0)
    explain_max_new_tokens: int = Field(96, ge=1)
    max_length: int = Field(1024, ge=64)
    # Micro-batch of the demo's training; gradient accumulation keeps 8 records per optimizer step.
    train_batch_size: int = Field(2, ge=1)


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


class LLMConfig(_Section):
    backend: Literal["embedded", "hf", "openai"] = "embedded"
    model: str = "HuggingFaceTB/SmolLM2-135M-Instruct"
    quantization: Literal["none", "nf4", "int8"] = "none"
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    batch_size: int = Field(8, ge=1)
    # Local decoding: generate (model.generate) | static (static KV cache, CUDA-graphed step) |
    # auto (static on CUDA without quantization).
    decode: Literal["auto", "generate", "static"] = "auto"
    # One OpenAI-compatible server, or several (a list or comma-separated) shared round-robin.
    base_url: str | list[str] = "http://127.0.0.1:8000/v1"
    api_key_env: str = "OPENAI_API_KEY"
    max_concurrency: int = Field(8, ge=1)
    timeout_s: float = Field(120, gt=0)
    max_retries: int = Field(5, ge=0)


class GenerationConfig(_Section):
    temperature: float = Field(0.01, ge=0)
    top_p: float = Field(0.9, gt=0, le=1)
    max_new_tokens: int = Field(256, ge=1)
    words: int | None = None
    seed: int = 0


class RecordsConfig(_Section):
    k_shots: list[int] = [64, 128, 256]
    valid_size: int = Field(100, ge=1)
    max_length: int = Field(2048, ge=64)
    seed: int = 42
    # Record variants to build: full, no-profile, no-description (ablations), titles (TALLRec),
    # label-only (full context, answer only). Each needs its inputs (records.py says which).
    variants: list[Literal["full", "no-profile", "no-description", "titles", "label-only"]] = [
        "full",
        "no-profile",
        "no-description",
        "titles",
        "label-only",
    ]


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


class EvaluateConfig(_Section):
    bertscore_model: str = "embedded"
    bertscore_num_layers: int = Field(6, ge=1)
    explain_max_new_tokens: int = Field(256, ge=1)
    explain_limit: int | None = 50
    explain_decode: Literal["auto", "generate", "static"] = "auto"  # as llm.decode


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


class TrackingConfig(_Section):
    tracking_uri: str = "sqlite:///mlflow.db"
    artifact_location: str = "mlartifacts"
    experiment: str = "reasoningrec"
    model_prefix: str = "reasoningrec"


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
    # Methods trained per (K, seed) by train_evaluate / the DVC experiment matrix, and zero-shot ones (K = 0).
    methods: list[str] = ["reasoningrec", "reasoningrec-no-profile", "reasoningrec-no-description", "tallrec"]
    zero_shot_methods: list[str] = ["zeroshot-vanilla", "zeroshot-reasoningrec"]
    seeds: list[int] = [42]


class Params(_Section):
    paths: PathsConfig = PathsConfig()
    datasets: dict[str, DatasetConfig] = {}
    demo: DemoConfig = DemoConfig()
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

    @property
    def data_dir(self) -> Path:
        """Raw data root: ``$REASONINGREC_DATA_DIR`` when set, else ``paths.data_dir``."""
        env = os.environ.get(DATA_DIR_ENV)
        return Path(env) if env else self.paths.data_dir

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


def read_params(path: str | Path) -> Params:
    """Read and validate one params file (no caching)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: params file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse_params(raw, str(path))


@lru_cache(maxsize=8)
def _cached(path: str) -> Params:
    return read_params(path)


def load_params(path: str | Path | None = None) -> Params:
    """The settings of this run: ``path``, else ``$REASONINGREC_PARAMS``, else ``./params.yaml``."""
    chosen = path or os.environ.get(PARAMS_ENV) or "params.yaml"
    return _cached(str(Path(chosen).resolve()))
