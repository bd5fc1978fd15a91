"""Serving requests: reading a request into the rows the served model scores, and building one from
a dataset's stage files.

:func:`as_frame` takes what the scoring server hands the model (a frame, a mapping of columns, rows)
to a frame with a column the model reads; :func:`item_text`, :func:`history_entries` and
:func:`text_field` read one row's fields, and every problem is a :class:`ServingInputError` that
names the row and the field (the scoring server answers it with HTTP 400). :func:`build_request`
(pure) and :func:`load_request` make the request of a user and a target item from the files the
data stages wrote, as ``reasoningrec explain`` and the logged input example use it.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from reasoningrec.errors import DataError

INPUT_COLUMNS = ("profile", "history", "target", "prompt_text", "prompt", "explain")


class ServingInputError(DataError, MlflowException):
    """A request the model cannot read (no rows, no known column, a row without what its prompt needs).

    Also an ``MlflowException`` with ``INVALID_PARAMETER_VALUE``: the scoring server answers 400.
    """

    def __init__(self, path, problem: str, *, row: int | None = None, field: str | None = None):
        DataError.__init__(self, path, problem, row=row, field=field)  # builds the message
        MlflowException.__init__(self, str(self), error_code=INVALID_PARAMETER_VALUE)


def item_text(value: Any, position: int, field: str):
    """A request's item (a mapping with ``title`` or a bare title string) as a records ItemText."""
    from reasoningrec.records.prompt import ItemText

    if isinstance(value, str):
        value = {"title": value}
    if not isinstance(value, dict) or not present(value.get("title")):
        raise ServingInputError("request", "expected an item with a non-empty 'title'", row=position, field=field)
    return ItemText(
        title=str(value["title"]).strip(),
        details=str(value.get("details") or "").strip(),
        description=str(value.get("description") or "").strip(),
    )


def history_entries(value: Any, position: int) -> list[tuple[int, Any]]:
    """A row's ``history`` (oldest first) as (liked, ItemText) pairs; missing = no history."""
    return [
        (_liked(entry, position), item_text(entry, position, f"history[{index}]"))
        for index, entry in enumerate(_history(value, position))
    ]


def _liked(entry: Any, position: int) -> int:
    if not isinstance(entry, dict) or entry.get("liked") is None:
        raise ServingInputError(
            "request", "each history item needs 'liked' (true/false)", row=position, field="history"
        )
    liked = entry["liked"]
    if hasattr(liked, "item"):  # numpy scalars from Parquet/pandas
        liked = liked.item()
    if not isinstance(liked, bool | int) or liked not in (0, 1):
        raise ServingInputError(
            "request", f"'liked' must be true or false, got {liked!r}", row=position, field="history"
        )
    return int(liked)


def text_field(value: Any, position: int, field: str) -> str:
    if not isinstance(value, str):
        raise ServingInputError("request", f"expected a string, got {type(value).__name__}", row=position, field=field)
    return value


def _history(value: Any, position: int) -> list:
    if value is None or (isinstance(value, float) and value != value):
        return []
    if isinstance(value, str | dict) or not hasattr(value, "__iter__"):
        raise ServingInputError(
            "request", f"expected a list of items, got {type(value).__name__}", row=position, field="history"
        )
    return _as_list(value)


def _as_list(value: Any) -> list:
    if value is None:
        return []
    if hasattr(value, "tolist"):  # numpy arrays from Parquet/pandas
        value = value.tolist()
    return list(value)


def present(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, float) and value != value:  # NaN from a missing DataFrame cell
        return False
    return not (isinstance(value, str) and not value.strip())


def as_frame(model_input: Any) -> pd.DataFrame:
    """The request as a frame with at least one row and a column the model reads.

    A mapping of arrays is a table by columns, and so is a one-row frame of arrays: the scoring
    server turns ``{"instances": [rows]}`` into that. Any other mapping is one request row.
    """
    import numpy as np

    if (
        isinstance(model_input, pd.DataFrame)
        and len(model_input) == 1
        and len(model_input.columns)
        and all(isinstance(value, np.ndarray) for value in model_input.iloc[0])
    ):
        model_input = dict(model_input.iloc[0])
    if isinstance(model_input, pd.DataFrame):
        frame = model_input.reset_index(drop=True)
    elif isinstance(model_input, dict) and model_input and all(isinstance(v, np.ndarray) for v in model_input.values()):
        try:
            frame = pd.DataFrame({name: list(values) for name, values in model_input.items()})
        except ValueError as error:
            raise ServingInputError("request", f"columns of different lengths ({error})") from None
    elif isinstance(model_input, dict):
        frame = pd.DataFrame([model_input])
    elif isinstance(model_input, list | tuple) and all(isinstance(row, dict) for row in model_input):
        frame = pd.DataFrame(list(model_input))
    else:
        raise ServingInputError("request", f"expected rows of named fields, got {type(model_input).__name__}")
    known = [column for column in frame.columns if column in INPUT_COLUMNS]
    if not known:
        # Schema enforcement drops unknown columns first, so this is also what an all-unknown request gets.
        got = ", ".join(map(str, frame.columns)) or "none"
        raise ServingInputError(
            "request",
            f"no rows with a column the model reads (columns: {got}; the model reads 'prompt', "
            "'prompt_text', or 'target' with 'profile' and 'history')",
        )
    if len(frame) == 0:
        raise ServingInputError("request", "no rows to score")
    return frame


def explain_rows(frame: pd.DataFrame, explain_all: bool) -> list[int]:
    if explain_all:
        return list(range(len(frame)))
    if "explain" not in frame.columns:
        return []
    return [i for i, flag in enumerate(frame["explain"].tolist()) if present(flag) and bool(flag)]


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
        read("samples.parquet", True),
        read("items.parquet", True),
        user_id,
        item_id,
        descriptions=read("descriptions.parquet", False),
        profiles=read("profiles.parquet", False),
    )
