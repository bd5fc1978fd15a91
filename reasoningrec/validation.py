"""Data validation with Great Expectations 1.x: the suites in ``expectations/*.json`` on each stage's files.

The JSON suites are the single source of the expectations. Run-time values (k, rating range,
like threshold, ...) enter as GX suite parameters (``{"$PARAMETER": "k"}``) filled from params.yaml,
and an expectation's ``meta`` may carry three rules evaluated against the run's flags
(``time_source``, ``duplicates_allowed``, ``kcore_mode``): ``skip_if`` / ``only_if`` decide whether it
runs, ``warn_if`` makes its failure a reported warning instead of an error.

Checks GX cannot express on a pandas source (``UnexpectedRowsExpectation`` needs SQL) become
columns computed first (:mod:`reasoningrec.validation_frames`): a per-user count for the k-core,
chronological positions and ``*_ok`` booleans for the samples. A table above
``validate.gx_max_rows`` rows is screened and GX checks the screened rows plus a sample
(:mod:`reasoningrec.validation_screen`); each suite's summary says which (``scope``). GX is imported
lazily: it costs ~2-5 s.
"""

from __future__ import annotations

import json
import logging
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from reasoningrec import validation_docs
from reasoningrec.errors import ConfigError, ValidationFailed
from reasoningrec.io import remove_stale_temps
from reasoningrec.validation_docs import DataDocs, asset_name
from reasoningrec.validation_frames import (  # noqa: F401  (re-exported: the derived frames' API)
    chronological_positions,
    kcore_counts,
    kcore_table,
    samples_frame,
)
from reasoningrec.validation_report import format_report, matches, summarize_suite
from reasoningrec.validation_screen import gx_rows
from reasoningrec.validation_summary import ValidationSummary

if TYPE_CHECKING:
    from reasoningrec.data.ingest import IngestSummary

EXPECTATIONS_ENV = "REASONINGREC_EXPECTATIONS_DIR"


def expectations_dir() -> Path:
    """The suites' folder: ``$REASONINGREC_EXPECTATIONS_DIR``, else the project's ``expectations/``
    (beside the package in a checkout, or in the working directory for an installed package)."""
    if os.environ.get(EXPECTATIONS_ENV):
        return Path(os.environ[EXPECTATIONS_ENV])
    beside = Path(__file__).resolve().parents[1] / "expectations"
    return beside if beside.is_dir() else Path.cwd() / "expectations"


STAGES = ("interactions", "samples")
SPLITS = ("train", "valid", "test")
INTERACTION_COLUMNS = ["user_id", "item_id", "rating", "timestamp"]
SAMPLE_COLUMNS = [
    "user_id",
    "split",
    "target_item",
    "target_rating",
    "target_timestamp",
    "label",
    "history_items",
    "history_labels",
    "profile_items",
    "profile_labels",
]
# What GX sees of the samples frame: scalar columns only (list cells stay in the report frame).
SAMPLE_CHECK_COLUMNS = [
    "user_id",
    "split",
    "target_item",
    "target_rating",
    "target_timestamp",
    "label",
    "user_splits",
    "target_pos",
    "observed_rating",
    "split_order_ok",
    "history_length",
    "history_labels_length",
    "history_before_target",
    "history_labels_ok",
    "profile_length",
    "profile_labels_length",
    "profile_before_history",
    "profile_labels_ok",
]


@dataclass(frozen=True)
class Check:
    """One suite run on one frame. ``frame`` also feeds the report's example rows."""

    suite: str
    frame: pd.DataFrame
    source: str
    columns: tuple[str, ...] | None = None  # the columns GX validates (default: all)
    known: dict | None = None  # screens already computed (validation_screen.screen_key -> row mask)
    asset: str | None = None  # the data asset Data Docs name: ``<dataset>/<file>`` (default: ``source``)


# ---------------------------------------------------------------------------------------------
# Suites (JSON) and their run-time values


def load_suite_spec(name: str, directory: Path | None = None) -> dict:
    """The JSON of suite ``name`` (``expectations/<name>.json``), checked for the keys GX needs."""
    path = Path(directory or expectations_dir()) / f"{name}.json"
    if not path.is_file():
        raise ConfigError(f"{path}: expectation suite not found")
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(spec, dict) or spec.get("name") != name or not isinstance(spec.get("expectations"), list):
        raise ConfigError(f"{path}: expected an object with name {name!r} and an 'expectations' list")
    spec.pop("id", None)
    return spec


def parameter_names(spec: dict) -> set[str]:
    """Every ``$PARAMETER`` a suite references."""
    found: set[str] = set()

    def walk(node) -> None:
        if isinstance(node, dict):
            if "$PARAMETER" in node:
                found.add(node["$PARAMETER"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(spec["expectations"])
    return found


def select_expectations(spec: dict, flags: dict) -> tuple[dict, list[dict]]:
    """Split a suite into the expectations that run under ``flags`` and the skipped ones (with why)."""
    active, skipped = [], []
    for expectation in spec["expectations"]:
        meta = expectation.get("meta") or {}
        if matches(meta.get("skip_if"), flags):
            reason = meta.get("skip_reason") or f"skipped because {meta['skip_if']}"
        elif meta.get("only_if") and not matches(meta["only_if"], flags):
            reason = (
                f"applies only when {meta['only_if']} (this run: "
                + ", ".join(f"{k}={flags.get(k)!r}" for k in meta["only_if"])
                + ")"
            )
        else:
            active.append({k: v for k, v in expectation.items() if k != "id"})
            continue
        kwargs = expectation.get("kwargs", {})
        columns = [kwargs["column"]] if "column" in kwargs else list(kwargs.get("column_list", []))
        skipped.append(
            {
                "expectation": expectation["type"],
                "columns": columns,
                "description": expectation.get("description"),
                "reason": reason,
            }
        )
    return {**spec, "expectations": active}, skipped


def suite_parameters(params, dataset: str) -> dict:
    """The values behind the suites' ``$PARAMETER`` placeholders, from params.yaml."""
    config, checks = params.dataset(dataset), params.validate_
    return {
        "rating_min": checks.rating_min,
        "rating_max": checks.rating_max,
        "timestamp_min": checks.timestamp_min,
        "timestamp_max": checks.timestamp_max,
        "k": config.kcore.k,
        "like_threshold": params.prepare.like_threshold,
        "history_len": config.history_len,
        "profile_items": params.prepare.profile_items,
    }


def run_flags(params, dataset: str, ingest_summary: IngestSummary | None) -> dict:
    """Facts about this run that the suites' ``skip_if`` / ``only_if`` / ``warn_if`` rules test (by
    name, so a mapping)."""
    config = params.dataset(dataset)
    return {
        "time_source": ingest_summary.time_source if ingest_summary is not None else "timestamp",
        "duplicates_allowed": dataset in params.validate_.allow_duplicates,
        "drop_duplicates": config.drop_duplicates,
        "kcore_mode": config.kcore.mode,
        "population": params.prepare.population,
    }


# ---------------------------------------------------------------------------------------------
# Running GX


def _import_gx():
    """Import GX quietly: analytics off (set before the import), its loggers to errors only."""
    os.environ["GX_ANALYTICS_ENABLED"] = "false"
    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    import great_expectations as gx

    for name, logger in list(logging.root.manager.loggerDict.items()):
        # Some GX modules pin their own logger to INFO at import; let them inherit ERROR instead.
        if name.startswith("great_expectations.") and isinstance(logger, logging.Logger):
            logger.setLevel(logging.NOTSET)
    return gx


def run_checks(
    checks: list[Check],
    parameters: dict,
    flags: dict,
    docs: DataDocs | None = None,
    directory: Path | None = None,
    max_rows: int = 2_000_000,
    sample_rows: int = 100_000,
) -> list[dict]:
    """Run each check's suite in one ephemeral GX context; summaries in order. With ``docs``, each
    result joins that stage's Data Docs history and the site is rebuilt (:mod:`reasoningrec.validation_docs`).

    A frame above ``max_rows`` rows is screened and GX checks the screened rows plus ``sample_rows``
    others (:func:`reasoningrec.validation_screen.gx_rows`); counts are then those of the whole frame.
    """
    gx = _import_gx()
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    if docs is not None:
        validation_docs.attach(context, docs)
    source = context.data_sources.add_pandas("reasoningrec")
    outcomes = []
    for check in checks:
        spec = load_suite_spec(check.suite, directory)
        active, skipped = select_expectations(spec, flags)
        missing = parameter_names(active) - parameters.keys()
        if missing:
            raise ConfigError(f"expectations/{check.suite}.json: no value for parameter(s) {sorted(missing)}")
        suite = context.suites.add(gx.ExpectationSuite(**active))
        batch = source.add_dataframe_asset(check.suite).add_batch_definition_whole_dataframe("all rows")
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=check.suite, data=batch, suite=suite)
        )
        frame = check.frame[list(check.columns)] if check.columns else check.frame
        frame, scope = gx_rows(frame, active["expectations"], parameters, max_rows, sample_rows, known=check.known)
        run_id = RunIdentifier(run_name=docs.run_name, run_time=docs.run_time) if docs is not None else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = definition.run(
                batch_parameters={"dataframe": frame},
                expectation_parameters=parameters,
                result_format="SUMMARY",
                run_id=run_id,
            )
        if docs is not None:
            validation_docs.keep(context, result, check.asset or check.source)
        outcomes.append(
            summarize_suite(
                check.suite,
                check.source,
                check.frame,
                result.to_json_dict(),
                skipped,
                flags,
                spec.get("meta") or {},
                scope,
            )
        )
    if docs is not None:
        validation_docs.build(context, docs)
    return outcomes


# ---------------------------------------------------------------------------------------------
# Stage wrapper (I/O)


def _interactions_checks(params, dataset: str, out: Path, flags: dict) -> tuple[list[Check], list[str]]:
    from reasoningrec.data.frames import load_interactions
    from reasoningrec.data.kcore import repeats

    path = out / "interactions.parquet"
    data = load_interactions(path, f"run `reasoningrec ingest -d {dataset}`")
    later, every = repeats([data.users, data.items, data.timestamp])  # one sort: the k-core's and the suite's
    known = {("expect_compound_columns_to_be_unique", ("user_id", "item_id", "timestamp")): every}
    checks = [
        Check(
            "interactions", data.frame(), str(path), tuple(INTERACTION_COLUMNS), known, asset_name(dataset, path.name)
        )
    ]
    notes = []
    if flags["time_source"] == "file_order":
        notes.append("timestamps are file order (ingest.json time_source: file_order): plausibility check skipped")
    config = params.dataset(dataset)
    counts = kcore_table(data, config.kcore.k, config.kcore.mode, flags["drop_duplicates"], later=later)
    checks.append(
        Check(
            "kcore",
            counts,
            f"{path} after {config.kcore.mode} k-core (k={config.kcore.k})",
            asset=asset_name(dataset, f"{path.name} (k-core counts)"),
        )
    )
    return checks, notes


def _samples_checks(params, dataset: str, out: Path, flags: dict) -> tuple[list[Check], list[str]]:
    from reasoningrec.data.frames import load_interactions, read_table
    from reasoningrec.data.kcore import repeat_mask

    path = out / "samples.parquet"
    table = read_table(path, SAMPLE_COLUMNS, f"run `reasoningrec prepare -d {dataset}`")
    inter_path = out / "interactions.parquet"
    data = load_interactions(inter_path, f"run `reasoningrec ingest -d {dataset}`")
    notes, later = [], None
    if flags["drop_duplicates"]:
        # prepare built the samples from the first occurrence of each (user, item, timestamp): the
        # targets and lists are located in that timeline, not in one that still has the repeats.
        later = repeat_mask(data.users, data.items, data.timestamp)
        if later.any():
            notes.append(f"{int(later.sum()):,} repeated (user, item, timestamp) rows left out, as prepare drops them")
    lists = {
        name: table.column(name).combine_chunks()
        for name in ("history_items", "history_labels", "profile_items", "profile_labels")
    }
    lists = {name: array if pa.types.is_list(array.type) else None for name, array in lists.items()}
    samples = table.to_pandas()
    timeline = data.subset(~later) if later is not None and later.any() else data
    frame = samples_frame(
        samples,
        timeline,
        params.prepare.like_threshold,
        {name: array for name, array in lists.items() if array is not None},
        shared_windows=params.prepare.population == "paper",
    )
    checks = [
        Check(
            "samples",
            frame,
            str(path),
            tuple(SAMPLE_CHECK_COLUMNS),
            asset=asset_name(dataset, f"{path.name} (checked against {inter_path.name})"),
        )
    ]
    # Every user (and, iterative, every item) a sample uses must be in the data stage's k-core.
    config = params.dataset(dataset)
    items = None
    if config.kcore.mode == "iterative":
        used = [pa.array(frame["target_item"].astype(object).where(frame["target_item"].notna(), None), pa.string())]
        for name in ("history_items", "profile_items"):
            array = lists[name] if lists[name] is not None else table.column(name).combine_chunks()
            used.append(pc.list_flatten(array).cast(pa.string()))
        items = pc.unique(pc.drop_null(pa.chunked_array(used, pa.string()))).to_numpy(zero_copy_only=False)
    counts = kcore_table(
        data,
        config.kcore.k,
        config.kcore.mode,
        flags["drop_duplicates"],
        users=samples["user_id"].dropna().unique(),
        items=items,
        later=later,
    )
    checks.append(
        Check(
            "kcore",
            counts,
            f"users/items of {path} in the k-core of {inter_path.name} (k={config.kcore.k})",
            asset=asset_name(dataset, f"{path.name} users (k-core counts)"),
        )
    )
    return checks, notes


def run_validation(params, dataset: str, stage: str, out_dir: Path | None = None) -> ValidationSummary:
    """Validate one stage's files of ``dataset``; write ``validation/validate_<stage>.json`` + Data Docs.

    ``interactions``: the interactions suite on ``interactions.parquet`` and the kcore suite on its
    k-core filtering. ``samples``: the samples suite on ``samples.parquet`` (checked against
    ``interactions.parquet``) and the kcore suite on the samples' users. Returns the summary;
    raises :class:`ValidationFailed` with the readable report when an expectation fails.
    """
    if stage not in STAGES:
        raise ConfigError(f"unknown validation stage {stage!r} (choose from: {', '.join(STAGES)})")
    started = time.perf_counter()
    out = Path(out_dir) if out_dir is not None else params.work_dir(dataset)
    remove_stale_temps(out / "validation", (f"validate_{stage}.json", f"data_docs_{stage}"))
    ingest_path = out / "ingest.json"
    from reasoningrec.data.ingest import IngestSummary

    flags = run_flags(params, dataset, IngestSummary.read(ingest_path) if ingest_path.is_file() else None)
    build = _interactions_checks if stage == "interactions" else _samples_checks
    checks, notes = build(params, dataset, out, flags)
    if not ingest_path.is_file():
        notes.append(f"{ingest_path} not found: timestamps assumed to be Unix seconds")
    folder = out / "validation"
    docs = DataDocs.for_stage(folder, dataset, stage) if params.validate_.data_docs else None
    limits = {"max_rows": params.validate_.gx_max_rows, "sample_rows": params.validate_.gx_sample_rows}
    suites = run_checks(checks, suite_parameters(params, dataset), flags, docs, **limits)
    summary = ValidationSummary(
        dataset=dataset,
        stage=stage,
        success=all(s["success"] for s in suites),
        flags=flags,
        parameters=suite_parameters(params, dataset),
        suites=suites,
        notes=notes,
        results_path=str(folder / f"validate_{stage}.json"),
        data_docs=str(docs.site / "index.html") if docs is not None else None,
        data_docs_run=docs.run_name if docs is not None else None,
        seconds=round(time.perf_counter() - started, 3),
    )
    summary.write(summary.results_path)
    if not summary.success:
        raise ValidationFailed(format_report(summary))
    return summary
