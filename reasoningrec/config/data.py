"""Settings of the data stages: where files live, the datasets, the plan, ingest, validate, prepare."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from reasoningrec.config.base import Section, checked_llm_methods


class PathsConfig(Section):
    data_dir: Path = Path("data/raw")
    work_dir: Path = Path("data/work")
    cache_dir: Path = Path("cache")
    models_dir: Path = Path("models")
    # Each stage's metrics (numbers only), where git and DVC see them: <metrics_dir>/<dataset>/<call>.json.
    metrics_dir: Path = Path("metrics")


# The generic table source: keys of `datasets.<name>.columns` and the files it reads.
TABLE_COLUMN_KEYS = frozenset({"user", "item", "rating", "timestamp", "review", "item_id"})
TABLE_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".tsv.gz", ".parquet")


class KCoreConfig(Section):
    k: int = Field(5, ge=1)
    # "user": drop users with fewer than k interactions (the paper's code);
    # "iterative": alternate user and item filtering until both have at least k.
    mode: Literal["user", "iterative"] = "user"


class DatasetConfig(Section):
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
            raise ValueError(
                f"unknown key(s) {unknown}; columns maps {sorted(TABLE_COLUMN_KEYS)} to the file's column names"
            )
        return value

    def text_encoding(self) -> str:
        """The encoding to decode this dataset's text files with."""
        return self.encoding or ("latin-1" if self.source.startswith("movielens") else "utf-8")


class PipelineConfig(Section):
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
        return checked_llm_methods(value)


class IngestConfig(Section):
    pass


class ValidateConfig(Section):
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
                raise ValueError(
                    f"{low} ({getattr(self, low):g}) is above {high} ({getattr(self, high):g}); "
                    f"expected {low} <= {high}"
                )
        return self


class PrepareConfig(Section):
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
