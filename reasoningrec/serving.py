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
``reasoningrec.json`` names it (``embedded``, a hub id or a path) and it is resolved at load time.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import pandas as pd

from reasoningrec.errors import DataError, ReasoningRecError

ADAPTER_ARTIFACT = "adapter"
DEFAULT_MAX_LENGTH = 2048
_PINNED = ("mlflow", "torch", "transformers", "peft", "pandas", "numpy", "pyarrow", "tokenizers")


class ServingInputError(DataError):
    """A request row lacks what the model needs to build its prompt."""


class ReasoningRecModel(mlflow.pyfunc.PythonModel):
    """P(Yes) and explanations from a ReasoningRec LoRA adapter (artifact ``adapter``)."""

    def load_context(self, context) -> None:
        from reasoningrec.answer import answer_token_ids
        from reasoningrec.methods import METHODS, VARIANTS
        from reasoningrec.models import load_adapter

        config = dict(context.model_config or {})
        self.model, self.tokenizer, self.meta = load_adapter(context.artifacts[ADAPTER_ARTIFACT])
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
        frame = _as_frame(model_input)
        prompts = [self.render(row, position) for position, row in enumerate(frame.to_dict("records"))]
        batch_size = int(params.get("batch_size") or self.batch_size)
        p_yes = score_prompts(self.model, self.tokenizer, prompts, batch_size, answer_ids=self.answer_ids)
        explanations = [""] * len(prompts)
        wanted = _explain_rows(frame, bool(params.get("explain", False)))
        if wanted:
            generated = explain(
                self.model, self.tokenizer, [prompts[i] for i in wanted], [p_yes[i] for i in wanted],
                mode=self.explanations, max_new_tokens=int(params.get("max_new_tokens") or self.max_new_tokens),
                batch_size=batch_size,
            )
            for row, explanation in zip(wanted, generated, strict=True):
                explanations[row] = explanation.reasoning
        return pd.DataFrame(
            {"p_yes": p_yes, "prediction": (p_yes >= 0.5).astype("int64"), "explanation": explanations}
        )

    def render(self, row: dict[str, Any], position: int) -> str:
        """The rendered chat prompt of one request row."""
        from reasoningrec.answer import format_answer
        from reasoningrec.chat import render_chat
        from reasoningrec.records.fit import fit_record

        if _present(row.get("prompt")):
            return str(row["prompt"])
        if _present(row.get("prompt_text")):
            return render_chat(self.tokenizer, str(row["prompt_text"]))
        if not _present(row.get("target")):
            raise ServingInputError(
                "request", "needs 'prompt', 'prompt_text', or 'target' (+ 'profile', 'history')",
                row=position, field="target",
            )
        target = item_text(row["target"], position, "target")
        history = [
            (_liked(entry, position), item_text(entry, position, f"history[{index}]"))
            for index, entry in enumerate(_as_list(row.get("history")))
        ]
        profile = str(row.get("profile") or "") if _present(row.get("profile")) else ""
        # The answer line counts towards the length budget, as it did in training.
        fitted = fit_record(
            self.tokenizer, self.variant, self.domain, profile, history, target, format_answer(1),
            self.max_length,
        )
        return fitted.prompt


def item_text(value: Any, position: int, field: str):
    """A request's item (a mapping with ``title`` or a bare title string) as a records ItemText."""
    from reasoningrec.records.prompt import ItemText

    if isinstance(value, str):
        value = {"title": value}
    if not isinstance(value, dict) or not _present(value.get("title")):
        raise ServingInputError("request", "expected an item with a non-empty 'title'", row=position, field=field)
    return ItemText(
        title=str(value["title"]).strip(),
        details=str(value.get("details") or "").strip(),
        description=str(value.get("description") or "").strip(),
    )


def _liked(entry: Any, position: int) -> int:
    if not isinstance(entry, dict) or entry.get("liked") is None:
        raise ServingInputError("request", "each history item needs 'liked' (true/false)", row=position, field="history")
    return int(bool(entry["liked"]))


def _as_list(value: Any) -> list:
    if value is None:
        return []
    if hasattr(value, "tolist"):  # numpy arrays from Parquet/pandas
        value = value.tolist()
    return list(value)


def _present(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, float) and value != value:  # NaN from a missing DataFrame cell
        return False
    return not (isinstance(value, str) and not value.strip())


def _as_frame(model_input: Any) -> pd.DataFrame:
    if isinstance(model_input, pd.DataFrame):
        return model_input.reset_index(drop=True)
    if isinstance(model_input, dict):
        return pd.DataFrame([model_input])
    return pd.DataFrame(list(model_input))


def _explain_rows(frame: pd.DataFrame, explain_all: bool) -> list[int]:
    if explain_all:
        return list(range(len(frame)))
    if "explain" not in frame.columns:
        return []
    return [i for i, flag in enumerate(frame["explain"].tolist()) if _present(flag) and bool(flag)]


# --------------------------------------------------------------------------- requests from dataset files


def build_request(
    samples: pd.DataFrame,
    items: pd.DataFrame,
    user_id: str,
    item_id: str,
    *,
    descriptions: pd.DataFrame | None = None,
    profiles: pd.DataFrame | None = None,
    split: str = "test",
) -> dict[str, Any]:
    """A serving request for ``user_id`` and any target item, from the stage files (pure).

    The history is the user's ``split`` sample's history (what the model would see for that
    split's target); item texts use the same title/details/description as training records.
    """
    from reasoningrec.records.inputs import item_texts

    rows = samples[(samples["user_id"].astype(str) == str(user_id)) & (samples["split"] == split)]
    if rows.empty:
        raise DataError("samples.parquet", f"user {user_id!r} has no {split!r} sample", field="user_id")
    sample = rows.iloc[0]
    texts = item_texts(items, descriptions)

    def item(identifier: Any, field: str) -> dict[str, str]:
        try:
            text = texts[str(identifier)]
        except KeyError:
            raise DataError("items.parquet", f"item {identifier!r} not found", field=field) from None
        return {"title": text.title, "details": text.details, "description": text.description}

    history = [
        {**item(i, "history_items"), "liked": bool(int(label) == 1)}
        for i, label in zip(_as_list(sample["history_items"]), _as_list(sample["history_labels"]), strict=True)
    ]
    profile = ""
    if profiles is not None:
        found = profiles[profiles["user_id"].astype(str) == str(user_id)]
        if len(found):
            profile = str(found["profile"].iloc[0] or "")
    return {"profile": profile, "history": history, "target": item(item_id, "item_id")}


def load_request(params, dataset: str, user_id: str, item_id: str) -> dict[str, Any]:
    """:func:`build_request` from ``<work_dir>/<dataset>/`` (descriptions/profiles when present)."""
    folder = params.work_dir(dataset)

    def read(name: str, required: bool) -> pd.DataFrame | None:
        path = folder / name
        if path.is_file():
            return pd.read_parquet(path)
        if required:
            raise DataError(path, "file not found; run the data stages for this dataset first")
        return None

    return build_request(
        read("samples.parquet", True), read("items.parquet", True), user_id, item_id,
        descriptions=read("descriptions.parquet", False), profiles=read("profiles.parquet", False),
    )


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
    outputs = Schema(
        [ColSpec("double", "p_yes"), ColSpec("long", "prediction"), ColSpec("string", "explanation")]
    )
    params = ParamSchema(
        [
            ParamSpec("explain", "boolean", False),
            ParamSpec("max_new_tokens", "long", max_new_tokens),
            ParamSpec("batch_size", "long", batch_size),
        ]
    )
    return ModelSignature(inputs=inputs, outputs=outputs, params=params)


def pip_requirements() -> list[str]:
    """Pinned versions of what loading the model imports (reasoningrec itself must be installed)."""
    pins = []
    for name in _PINNED:
        try:
            pins.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            continue
    return pins


def save_pyfunc_model(
    adapter_dir: str | Path,
    path: str | Path,
    *,
    batch_size: int = 8,
    max_new_tokens: int = 256,
    extra_config: dict[str, Any] | None = None,
) -> Path:
    """Write the MLflow pyfunc model folder for one adapter (the adapter is copied in, the base is not).

    Saving locally then logging the folder (``tracking.log_run(artifacts={"model": path})``) keeps
    MLflow's thread-local fluent API out of the way. Requirements are pinned explicitly: letting MLflow
    infer them would load the LLM in a subprocess.
    """
    import shutil

    adapter_dir, path = Path(adapter_dir), Path(path)
    if not (adapter_dir / "reasoningrec.json").is_file():
        raise ReasoningRecError(f"{adapter_dir}: not a trained adapter folder (no reasoningrec.json)")
    if path.exists():
        shutil.rmtree(path)
    mlflow.pyfunc.save_model(
        path,
        python_model=ReasoningRecModel(),
        artifacts={ADAPTER_ARTIFACT: str(adapter_dir)},
        signature=signature(batch_size=batch_size, max_new_tokens=max_new_tokens),
        pip_requirements=pip_requirements(),
        model_config={"batch_size": batch_size, "max_new_tokens": max_new_tokens, **(extra_config or {})},
        metadata={"reasoningrec_adapter": adapter_dir.name},
    )
    return path
