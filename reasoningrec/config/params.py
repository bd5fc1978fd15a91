"""The whole settings file: one :class:`Params` of every section, validated with errors that name the key."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator

from reasoningrec.config.base import DATA_DIR_ENV, METRICS_DIR_ENV, Section
from reasoningrec.config.data import (
    DatasetConfig,
    IngestConfig,
    PathsConfig,
    PipelineConfig,
    PrepareConfig,
    ValidateConfig,
)
from reasoningrec.config.explanations import ExplanationsConfig
from reasoningrec.config.generation import GenerationConfig, LLMConfig
from reasoningrec.config.modelling import BaselinesConfig, EvaluateConfig, RecordsConfig, TrainConfig
from reasoningrec.config.operations import OrchestrationConfig, TrackingConfig
from reasoningrec.errors import ConfigError


class Params(Section):
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
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
        raise ConfigError(f"{source}: invalid settings: {problems}") from None
