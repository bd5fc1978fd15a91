"""The registered model: an MLflow pyfunc that loads a LoRA adapter and answers like/dislike + why.

Input: a DataFrame, one row per question, either

* ``profile`` (str), ``history`` (list of ``{"title", "description", "details", "liked"}``, oldest
  first) and ``target`` (``{"title", "description", "details"}``): the prompt is built with the
  adapter's own record variant and domain, exactly as :mod:`reasoningrec.records` builds training
  records (oldest history dropped first when it would not fit ``max_length``); or
* ``prompt_text`` (unrendered instruction, rendered with the chat template), or ``prompt`` (already
  rendered, e.g. the ``prompt`` column of ``records.parquet``).

Output: ``p_yes`` (P(Yes) from one forward pass), ``prediction`` (1 = like, at 0.5) and
``explanation`` (the generated reasoning, written after the scored label unless the model was saved
with ``explanations: free``; only when ``params={"explain": True}`` or a true ``explain`` column asks
for it, else empty). The base model is not copied into the model: the adapter's
``reasoningrec.json`` names it (a hub id or a path) and it is resolved at load time; the ``embedded``
base travels as its GGUF file (artifact ``embedded_base``, see :mod:`reasoningrec.serving_env`).

The model is logged *from code* (:mod:`reasoningrec.serving_model`): loading it imports this module
and unpickles nothing. Requests are read by :mod:`reasoningrec.serving_requests`: one the model
cannot read raises its ``ServingInputError``, an MLflow ``INVALID_PARAMETER_VALUE`` error, which the
scoring server answers with HTTP 400 and its message.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow.pyfunc
import pandas as pd

from reasoningrec.errors import DataError, ReasoningRecError
from reasoningrec.serving_requests import (
    ServingInputError,
    as_frame,
    explain_rows,
    history_entries,
    item_text,
    load_request,
    present,
    text_field,
)

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from reasoningrec.config import Params

ADAPTER_ARTIFACT = "adapter"
EMBEDDED_BASE_ARTIFACT = "embedded_base"
PACKAGE_ARTIFACT = "package"
MODEL_CODE = Path(__file__).with_name("serving_model.py")
# MLflow checks an input example at log time by loading the model in the logging process: worth it for
# small bases, not for a 7B one (28 GB in fp32 on the CPU box that logs GPU runs later).
EXAMPLE_CHECK_MAX_BYTES = 2 * 1024**3
DEFAULT_MAX_LENGTH = 2048


class ReasoningRecModel(mlflow.pyfunc.PythonModel):
    """P(Yes) and explanations from a ReasoningRec LoRA adapter (artifact ``adapter``)."""

    def load_context(self, context) -> None:
        from reasoningrec.answer import answer_token_ids
        from reasoningrec.methods import METHODS, VARIANTS
        from reasoningrec.models import load_adapter

        config = dict(context.model_config or {})
        base = None
        if EMBEDDED_BASE_ARTIFACT in context.artifacts:
            from reasoningrec.llm.embedded import embedded_model_dir

            base = str(embedded_model_dir(source=Path(context.artifacts[EMBEDDED_BASE_ARTIFACT])))
        self.model, self.tokenizer, self.meta = load_adapter(context.artifacts[ADAPTER_ARTIFACT], base_model=base)
        known = METHODS.get(self.meta.get("method", ""))
        variant = self.meta.get("variant") or (known.variant if known else None) or "full"
        if variant not in VARIANTS:
            raise ReasoningRecError(f"adapter metadata: unknown record variant {variant!r}")
        self.variant = variant
        self.domain = self.meta.get("domain") or config.get("domain") or "generic"
        self.max_length = int(self.meta.get("max_length") or config.get("max_length") or DEFAULT_MAX_LENGTH)
        self.batch_size = int(config.get("batch_size", 8))
        self.max_new_tokens = int(config.get("max_new_tokens", 256))
        self.explanations = str(config.get("explanations", "consistent"))
        self.answer_ids = answer_token_ids(self.tokenizer)

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        from reasoningrec.scoring import explain, score_prompts

        params = params or {}
        frame = as_frame(model_input)
        prompts = [self.render(row, position) for position, row in enumerate(frame.to_dict("records"))]
        batch_size = int(params.get("batch_size") or self.batch_size)
        p_yes = score_prompts(self.model, self.tokenizer, prompts, batch_size, answer_ids=self.answer_ids)
        explanations = [""] * len(prompts)
        wanted = explain_rows(frame, bool(params.get("explain", False)))
        if wanted:
            generated = explain(
                self.model,
                self.tokenizer,
                [prompts[i] for i in wanted],
                [p_yes[i] for i in wanted],
                mode=self.explanations,
                max_new_tokens=int(params.get("max_new_tokens") or self.max_new_tokens),
                batch_size=batch_size,
            )
            for row, explanation in zip(wanted, generated, strict=True):
                explanations[row] = explanation.reasoning
        return pd.DataFrame({"p_yes": p_yes, "prediction": (p_yes >= 0.5).astype("int64"), "explanation": explanations})

    def render(self, row: dict[str, Any], position: int) -> str:
        """The rendered chat prompt of one request row."""
        from reasoningrec.answer import format_answer
        from reasoningrec.chat import render_chat
        from reasoningrec.records.fit import fit_record

        if present(row.get("prompt")):
            return text_field(row["prompt"], position, "prompt")
        if present(row.get("prompt_text")):
            return render_chat(self.tokenizer, text_field(row["prompt_text"], position, "prompt_text"))
        if not present(row.get("target")):
            raise ServingInputError(
                "request",
                "needs 'prompt', 'prompt_text', or 'target' (+ 'profile', 'history')",
                row=position,
                field="target",
            )
        target = item_text(row["target"], position, "target")
        history = history_entries(row.get("history"), position)
        profile = text_field(row["profile"], position, "profile") if present(row.get("profile")) else ""
        # The answer line counts towards the length budget, as it did in training.
        fitted = fit_record(
            self.tokenizer,
            self.variant,
            self.domain,
            profile,
            history,
            target,
            format_answer(1),
            self.max_length,
        )
        return fitted.prompt


# --------------------------------------------------------------------------- saving


def signature(*, batch_size: int = 8, max_new_tokens: int = 256):
    """Input/output/params schema of the served model (columns optional: see the module docstring).

    MLflow fills in a param's default when a request leaves it out, so the defaults here are the
    model's own settings.
    """
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Array, ColSpec, Object, ParamSchema, ParamSpec, Property, Schema

    item = [
        Property("title", "string"),
        Property("description", "string", required=False),
        Property("details", "string", required=False),
    ]
    inputs = Schema(
        [
            ColSpec("string", "profile", required=False),
            ColSpec(Array(Object([*item, Property("liked", "boolean")])), "history", required=False),
            ColSpec(Object(item), "target", required=False),
            ColSpec("string", "prompt_text", required=False),
            ColSpec("string", "prompt", required=False),
            ColSpec("boolean", "explain", required=False),
        ]
    )
    outputs = Schema([ColSpec("double", "p_yes"), ColSpec("long", "prediction"), ColSpec("string", "explanation")])
    params = ParamSchema(
        [
            ParamSpec("explain", "boolean", False),
            ParamSpec("max_new_tokens", "long", max_new_tokens),
            ParamSpec("batch_size", "long", batch_size),
        ]
    )
    return ModelSignature(inputs=inputs, outputs=outputs, params=params)


def example_request(params: Params, dataset: str, predictions: pd.DataFrame) -> dict[str, Any] | None:
    """The served model's input example: the request of the run's first test row, built from the
    dataset's files (``None`` when they are not on this machine)."""
    test = predictions[predictions["split"] == "test"]
    if test.empty:
        return None
    first = test.iloc[0]
    try:
        return load_request(params, dataset, str(first["user_id"]), str(first["target_item"]))
    except DataError:
        return None


def pyfunc_model_arguments(
    adapter_dir: str | Path,
    staging_dir: str | Path,
    *,
    batch_size: int = 8,
    max_new_tokens: int = 256,
    extra_config: dict[str, Any] | None = None,
    input_example: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Keyword arguments of ``mlflow.pyfunc.log_model`` for one adapter (models-from-code).

    The model carries the adapter, the package wheel, the embedded base's GGUF when the adapter was
    trained on ``embedded``, and requirements that rebuild its environment
    (:mod:`reasoningrec.serving_env`); the wheel and the constraints are written to ``staging_dir``,
    which must exist until the model is logged. Requirements are given, not inferred: inferring
    them would load the LLM in a subprocess. ``input_example`` is kept only when the base loads
    cheaply here (:func:`example_checkable`), since MLflow loads the model to check it.
    """
    from reasoningrec import serving_env
    from reasoningrec.io import read_json
    from reasoningrec.models import ADAPTER_META

    adapter_dir, staging_dir = Path(adapter_dir), Path(staging_dir)
    if not (adapter_dir / ADAPTER_META).is_file():
        raise ReasoningRecError(f"{adapter_dir}: not a trained adapter folder (no {ADAPTER_META})")
    meta = read_json(adapter_dir / ADAPTER_META)
    wheel = serving_env.package_wheel(staging_dir)
    artifacts = {ADAPTER_ARTIFACT: str(adapter_dir), PACKAGE_ARTIFACT: str(wheel)}
    if meta.get("base_model") == "embedded":
        from reasoningrec.llm.embedded import gguf_path

        artifacts[EMBEDDED_BASE_ARTIFACT] = str(gguf_path())
    constraints = serving_env.write_constraints(staging_dir / "constraints.txt")
    arguments: dict[str, Any] = {
        "python_model": str(MODEL_CODE),
        "artifacts": artifacts,
        "signature": signature(batch_size=batch_size, max_new_tokens=max_new_tokens),
        # MLflow keeps a file artifact at artifacts/<file name> inside the model folder.
        "pip_requirements": serving_env.pip_requirements(f"./artifacts/{wheel.name}", constraints),
        "model_config": {"batch_size": batch_size, "max_new_tokens": max_new_tokens, **(extra_config or {})},
        "metadata": {
            "reasoningrec_adapter": adapter_dir.name,
            "base_model": str(meta.get("base_model")),
            "method": str(meta.get("method")),
            "variant": str(meta.get("variant")),
        },
    }
    if input_example is not None and example_checkable(str(meta.get("base_model"))):
        arguments["input_example"] = pd.DataFrame([input_example])
    elif input_example is not None:
        log.info(
            "%s: logged without an input example (checking one would load base %s here)",
            adapter_dir,
            meta.get("base_model"),
        )
    return arguments


def example_checkable(base_model: str) -> bool:
    """Whether loading ``base_model`` to check an input example is cheap: the embedded model, or a local
    folder whose weight files total at most :data:`EXAMPLE_CHECK_MAX_BYTES` (a hub id: no)."""
    from reasoningrec.models import resolve_model

    if base_model == "embedded":
        return True
    folder = Path(resolve_model(base_model))
    if not folder.is_dir():
        return False
    weights = [f for f in folder.iterdir() if f.suffix in (".safetensors", ".bin", ".gguf")]
    return bool(weights) and sum(f.stat().st_size for f in weights) <= EXAMPLE_CHECK_MAX_BYTES
