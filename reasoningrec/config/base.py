"""The base of every settings section, and the environment variables the settings read."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from reasoningrec import methods as method_table
from reasoningrec.errors import ConfigError

PARAMS_ENV = "REASONINGREC_PARAMS"
DATA_DIR_ENV = "REASONINGREC_DATA_DIR"
METRICS_DIR_ENV = "REASONINGREC_METRICS_DIR"


class Section(BaseModel):
    """A ``params.yaml`` section: immutable, and an unknown key is an error, never a silent default."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def checked_llm_methods(value: list[str]) -> list[str]:
    """``value`` when every name is an LLM method of :mod:`reasoningrec.methods`, else ValueError."""
    for name in value:
        try:
            method_table.llm_method(name)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
    return value
