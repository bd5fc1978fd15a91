"""Typed settings, loaded once from ``params.yaml``.

Every section of ``params.yaml`` is named after the stage that reads it (the DVC convention), and
each maps to one frozen model: the data stages' in :mod:`.data`, text generation's in
:mod:`.generation`, the modelling stages' in :mod:`.modelling`, the explanation metrics' in
:mod:`.explanations`, tracking and orchestration in :mod:`.operations`; :mod:`.params` joins them and
:mod:`.loading` reads files, overlays and ``--set`` assignments. Unknown keys are rejected so a typo
never silently falls back to a default. Nothing happens at import time: call :func:`load_params`.
"""

from reasoningrec.config.base import DATA_DIR_ENV, METRICS_DIR_ENV, PARAMS_ENV, Section
from reasoningrec.config.data import (
    TABLE_COLUMN_KEYS,
    TABLE_SUFFIXES,
    DatasetConfig,
    IngestConfig,
    KCoreConfig,
    PathsConfig,
    PipelineConfig,
    PrepareConfig,
    ValidateConfig,
)
from reasoningrec.config.explanations import ExplanationsConfig, JudgeConfig, MentionConfig, VocabularyConfig
from reasoningrec.config.generation import GenerationConfig, LLMConfig
from reasoningrec.config.loading import deep_merge, load_params, params_path, parse_assignments, read_params
from reasoningrec.config.modelling import BaselinesConfig, EvaluateConfig, RecordsConfig, TrainConfig
from reasoningrec.config.operations import ChampionFloors, OrchestrationConfig, TrackingConfig
from reasoningrec.config.params import Params, parse_params

__all__ = [
    "DATA_DIR_ENV",
    "METRICS_DIR_ENV",
    "PARAMS_ENV",
    "TABLE_COLUMN_KEYS",
    "TABLE_SUFFIXES",
    "BaselinesConfig",
    "ChampionFloors",
    "DatasetConfig",
    "EvaluateConfig",
    "ExplanationsConfig",
    "GenerationConfig",
    "IngestConfig",
    "JudgeConfig",
    "KCoreConfig",
    "LLMConfig",
    "MentionConfig",
    "OrchestrationConfig",
    "Params",
    "PathsConfig",
    "PipelineConfig",
    "PrepareConfig",
    "RecordsConfig",
    "Section",
    "TrackingConfig",
    "TrainConfig",
    "ValidateConfig",
    "VocabularyConfig",
    "deep_merge",
    "load_params",
    "params_path",
    "parse_assignments",
    "parse_params",
    "read_params",
]
