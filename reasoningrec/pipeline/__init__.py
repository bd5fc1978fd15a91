"""The pipeline, defined once: its stages, and the plan of stage calls every runner executes.

A :class:`Stage` says what one step is: its entry point (a package function), the files it reads and
writes in the dataset's work folder, the ``params.yaml`` keys and the code its result depends on,
and whether it is a validation gate. :func:`plan` turns the settings into the ordered
:class:`Call` list for one dataset (which texts are imported or generated, which (method, K, seed)
runs). The CLI commands, the main job (``reasoningrec run``), the Prefect flows, the experiment grid
and the generated ``dvc.yaml`` all iterate this plan; :mod:`reasoningrec.completion` decides, with
one rule, whether a call is up to date.

The stage table lives in :mod:`~.stages`, the plan and the entry-point calls in :mod:`~.calls`;
this package exports both.
"""

from reasoningrec.pipeline.calls import (
    Call,
    call_for,
    experiment_runs,
    find_call,
    gates_before,
    imported_outputs,
    invoke,
    plan,
    producers,
    raw_paths,
    resolve_entry,
    section_values,
    shard_call,
    text_stages,
)
from reasoningrec.pipeline.stages import (
    DATASET,
    LLM_KEYS,
    PHASES,
    STAGES,
    TRAIN_KEYS,
    Kind,
    Phase,
    Stage,
    markdown_table,
    stage,
)

__all__ = [
    "Call",
    "DATASET",
    "Kind",
    "LLM_KEYS",
    "PHASES",
    "Phase",
    "STAGES",
    "Stage",
    "TRAIN_KEYS",
    "call_for",
    "experiment_runs",
    "find_call",
    "gates_before",
    "imported_outputs",
    "invoke",
    "markdown_table",
    "plan",
    "producers",
    "raw_paths",
    "resolve_entry",
    "section_values",
    "shard_call",
    "stage",
    "text_stages",
]
