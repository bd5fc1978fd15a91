"""Imported texts as pipeline frames: descriptions, profiles and reasoning rows, checked like generated ones."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from reasoningrec.errors import DataError
from reasoningrec.importer.files import ITEM_FILE, MOVIE_SUMMARY_FILE
from reasoningrec.importer.match import Match
from reasoningrec.importer.sft import SftRecord
from reasoningrec.synthesis.guards import TRUNCATED, check_output, count_problems
from reasoningrec.synthesis.text import postprocess_output

IMPORTED_MODEL = "Mixtral-8x7B-Instruct (paper authors)"
SOURCE = "imported"
EXAMPLES = 3  # rows quoted per problem in a summary


def _guarded(texts: Sequence[str]) -> tuple[list[bool], list[str | None]]:
    problems = [check_output(t) for t in texts]
    return [_acceptable(p) for p in problems], problems


def _acceptable(problem: str | None) -> bool:
    """Imported texts are kept as published: a cut-off ending (common in the authors' Mixtral
    outputs, which hit their token limit) is reported in ``problem`` but does not make a row invalid."""
    return problem is None or problem == TRUNCATED


def descriptions_from_items(items: Mapping[str, Mapping], path: str | Path = ITEM_FILE) -> pd.DataFrame:
    """descriptions.parquet rows from ``processed_item_information.json``."""
    rows = []
    for item_id, info in items.items():
        if not isinstance(info, Mapping):
            raise DataError(path, "expected an object {title, brand, price, description}", field=str(item_id))
        rows.append((str(item_id), postprocess_output(str(info.get("description") or ""))))
    return _text_frame("item_id", "description", rows)


def descriptions_from_movie_summaries(frame: pd.DataFrame, path: str | Path = MOVIE_SUMMARY_FILE) -> pd.DataFrame:
    """descriptions.parquet rows from the ML-1M ``movie_summary_25_words.csv``."""
    for column in ("movie_id", "summary"):
        if column not in frame.columns:
            raise DataError(path, f"missing column (has {list(frame.columns)})", field=column)
    rows = [
        (str(i), postprocess_output(str(s) if s == s else ""))
        for i, s in zip(frame["movie_id"], frame["summary"], strict=True)
    ]
    return _text_frame("item_id", "description", rows)


def profiles_frame(profiles: Mapping[str, str], users: Sequence[str] | None = None) -> pd.DataFrame:
    """profiles.parquet rows: every user of ``users`` (empty profile when none was imported)."""
    keys = [str(u) for u in (users if users is not None else profiles)]
    rows = [(u, postprocess_output(str(profiles.get(u) or ""))) for u in keys]
    frame = _text_frame("user_id", "profile", rows)
    # An empty profile is the documented no-profile variant, not a failure.
    frame.loc[frame["profile"] == "", ["valid", "problem"]] = [True, None]
    return frame


def _text_frame(key: str, column: str, rows: list[tuple[str, str]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=[key, column])
    valid, problems = _guarded(frame[column].tolist())
    frame["source"] = SOURCE
    frame["model"] = IMPORTED_MODEL
    frame["valid"] = pd.Series(valid, dtype=bool)
    frame["problem"] = pd.Series(problems, dtype=object)
    return frame


TARGET_DIFFERS, LABEL_DISAGREES = "target_differs", "label_disagrees"
REASONING_COLUMNS = [
    "user_id",
    "split",
    "target_item",
    "label",
    "reasoning",
    "source",
    "model",
    "imported_label",
    "label_agrees",
    "target_agrees",
    "record_index",
    "valid",
    "problem",
]


def reasoning_frame(
    split: str, records: Sequence[SftRecord], matches: Sequence[Match], samples: pd.DataFrame
) -> pd.DataFrame:
    """reasoning.parquet rows of one split (``samples``: that split's rows, positions as in ``matches``).

    The samples' label is kept; a record whose label disagrees, or whose target is not the sample's
    target (so its reasoning explains another item), is kept but marked ``valid=False``.
    """
    rows = []
    for match in matches:
        record, sample = records[match.record], samples.iloc[match.sample]
        label = int(sample["label"])
        agrees = record.label == label
        # A wrong target or label outranks a cut-off ending: it makes the text unusable.
        problem = (None if match.by_target else TARGET_DIFFERS) or (None if agrees else LABEL_DISAGREES)
        problem = problem or check_output(record.reasoning)
        rows.append(
            {
                "user_id": str(sample["user_id"]),
                "split": split,
                "target_item": str(sample["target_item"]),
                "label": label,
                "reasoning": record.reasoning,
                "source": SOURCE,
                "model": IMPORTED_MODEL,
                "imported_label": record.label,
                "label_agrees": agrees,
                "target_agrees": match.by_target,
                "record_index": record.index,
                "valid": _acceptable(problem),
                "problem": problem,
            }
        )
    frame = pd.DataFrame(rows, columns=REASONING_COLUMNS)
    return frame.astype(
        {
            "label": "int8",
            "imported_label": "Int8",
            "label_agrees": bool,
            "target_agrees": bool,
            "valid": bool,
            "record_index": "int64",
            "problem": object,
        }
    )


def text_summary(frame: pd.DataFrame, column: str, key: str) -> dict:
    bad = frame[~frame["valid"]]
    return {
        "count": len(frame),
        "empty": int((frame[column] == "").sum()),
        "invalid": len(bad),
        "problems": count_problems(frame["problem"]),
        "examples": [
            {key: r[key], "problem": r["problem"], "text": r[column][:200]} for _, r in bad.head(EXAMPLES).iterrows()
        ],
    }
