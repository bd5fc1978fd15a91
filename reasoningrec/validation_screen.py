"""Validation at scale: which rows of a large table Great Expectations checks.

A table of up to ``validate.gx_max_rows`` rows goes to GX whole. A larger one is screened first:
for each active expectation, a vectorised test marks every row that could break it (a superset:
nulls, values outside a bound, a value outside a set, every row of a repeated key, unequal pairs).
GX then checks those rows plus a seeded uniform sample of ``validate.gx_sample_rows`` others. Since
every offending row is among the screened ones, GX finds each defect and counts it exactly; the
counts a report gives are over the whole table. A suite with an expectation no screen exists for
(a table-level aggregate, a ``mostly`` threshold) goes to GX whole, however large.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from reasoningrec.data.kcore import repeated


def resolve(value, parameters: dict):
    """A kwarg with its ``{"$PARAMETER": name}`` placeholders filled in."""
    if isinstance(value, dict) and "$PARAMETER" in value:
        return parameters[value["$PARAMETER"]]
    return value


def _not_null(frame: pd.DataFrame, kwargs: dict) -> np.ndarray:
    return frame[kwargs["column"]].isna().to_numpy()


def _between(frame: pd.DataFrame, kwargs: dict) -> np.ndarray:
    column = frame[kwargs["column"]]
    values = pd.to_numeric(column, errors="coerce") if column.dtype == object else column
    mask = values.isna().to_numpy() | column.isna().to_numpy()
    array = values.to_numpy(dtype=float, na_value=np.nan)
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    with np.errstate(invalid="ignore"):
        if low is not None:
            mask |= (array <= low) if kwargs.get("strict_min") else (array < low)
        if high is not None:
            mask |= (array >= high) if kwargs.get("strict_max") else (array > high)
    return mask


def _in_set(frame: pd.DataFrame, kwargs: dict) -> np.ndarray:
    column = frame[kwargs["column"]]
    return (~column.isin(list(kwargs["value_set"])) | column.isna()).to_numpy()


def _codes(column: pd.Series) -> np.ndarray:
    if isinstance(column.dtype, pd.CategoricalDtype):
        return column.cat.codes.to_numpy().astype(np.int64)
    if column.dtype.kind in "iu":
        return column.to_numpy().astype(np.int64, copy=False)
    return pd.factorize(column, use_na_sentinel=True)[0].astype(np.int64)


def _unique(frame: pd.DataFrame, kwargs: dict) -> np.ndarray:
    columns = [frame[name] for name in kwargs["column_list"]]
    mask = repeated([_codes(c) for c in columns], every=True)
    for column in columns:
        mask |= column.isna().to_numpy()
    return mask


def _pair_equal(frame: pd.DataFrame, kwargs: dict) -> np.ndarray:
    a, b = frame[kwargs["column_A"]], frame[kwargs["column_B"]]
    return (a.isna() | b.isna() | (a != b)).to_numpy(dtype=bool, na_value=True)


SCREENS: dict[str, Callable[[pd.DataFrame, dict], np.ndarray]] = {
    "expect_column_values_to_not_be_null": _not_null,
    "expect_column_values_to_be_between": _between,
    "expect_column_values_to_be_in_set": _in_set,
    "expect_compound_columns_to_be_unique": _unique,
    "expect_column_pair_values_to_be_equal": _pair_equal,
}


def screen_key(expectation_type: str, kwargs: dict) -> tuple:
    """How a precomputed screen is looked up: the type and the columns it reads."""
    columns = kwargs.get("column_list") or [kwargs[k] for k in ("column", "column_A", "column_B") if k in kwargs]
    return (expectation_type, tuple(columns))


def screen(
    frame: pd.DataFrame, expectations: list[dict], parameters: dict, known: dict | None = None
) -> np.ndarray | None:
    """Rows that could break any of ``expectations``; None when one of them has no screen.

    ``known`` maps :func:`screen_key` to masks the caller computed already (e.g. repeated keys).
    """
    mask = np.zeros(len(frame), dtype=bool)
    for expectation in expectations:
        kwargs = {k: resolve(v, parameters) for k, v in expectation.get("kwargs", {}).items()}
        test = SCREENS.get(expectation["type"])
        if test is None or kwargs.get("mostly") not in (None, 1, 1.0):
            return None
        if kwargs.get("row_condition") is None and screen_key(expectation["type"], kwargs) in (known or {}):
            mask |= known[screen_key(expectation["type"], kwargs)]
            if expectation["type"] == "expect_compound_columns_to_be_unique":
                for name in kwargs["column_list"]:
                    mask |= frame[name].isna().to_numpy()
            continue
        mask |= test(frame, kwargs)
    return mask


def gx_rows(
    frame: pd.DataFrame,
    expectations: list[dict],
    parameters: dict,
    max_rows: int,
    sample_rows: int,
    seed: int = 0,
    known: dict | None = None,
) -> tuple[pd.DataFrame, dict]:
    """The frame GX checks and the scope note that goes into the JSON (see the module docstring)."""
    n = len(frame)
    whole = {"rows": n, "gx_rows": n, "mode": "all rows"}
    if n <= max_rows:
        return frame, whole
    flagged = screen(frame, expectations, parameters, known)
    if flagged is None:
        return frame, {**whole, "reason": "an expectation has no vectorised screen: GX checks every row"}
    screened = np.flatnonzero(flagged)
    if len(screened) + sample_rows >= n:
        return frame, {**whole, "reason": "most rows were screened: GX checks every row"}
    others = np.flatnonzero(~flagged)
    rng = np.random.default_rng(seed)
    sample = others[np.sort(rng.choice(len(others), size=min(sample_rows, len(others)), replace=False))]
    rows = np.union1d(screened, sample)
    return frame.iloc[rows], {
        "rows": n,
        "gx_rows": int(len(rows)),
        "mode": "screened + sample",
        "screened_rows": int(len(screened)),
        "sampled_rows": int(len(sample)),
        "seed": seed,
    }
