"""Data validation with Great Expectations 1.x: the suites in ``expectations/*.json`` on each stage's files.

The JSON suites are the single source of the expectations. Run-time values (k, rating range,
like threshold, ...) enter as GX suite parameters (``{"$PARAMETER": "k"}``) filled from params.yaml,
and an expectation's ``meta`` may carry three rules evaluated against the run's flags
(``time_source``, ``duplicates_allowed``, ``kcore_mode``): ``skip_if`` / ``only_if`` decide whether it
runs, ``warn_if`` makes its failure a reported warning instead of an error.

Checks GX cannot express on a pandas source (``UnexpectedRowsExpectation`` needs SQL) become
columns computed here first: a per-user count for the k-core, chronological positions and
``*_ok`` booleans for the samples. GX is imported lazily: it costs ~2-5 s.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from reasoningrec.errors import ConfigError, DataError, ValidationFailed
from reasoningrec.io import read_json, write_json
from reasoningrec.validation_report import format_report, matches, summarize_suite

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
    "user_id", "split", "target_item", "target_rating", "target_timestamp", "label",
    "history_items", "history_labels", "profile_items", "profile_labels",
]
# What GX sees of the samples frame: scalar columns only (list cells stay in the report frame).
SAMPLE_CHECK_COLUMNS = [
    "user_id", "split", "target_item", "target_rating", "target_timestamp", "label", "user_splits",
    "target_pos", "observed_rating", "split_order_ok", "history_length", "history_labels_length",
    "history_before_target", "history_labels_ok", "profile_length", "profile_labels_length",
    "profile_before_history", "profile_labels_ok",
]
_DOCS_SITE = "reasoningrec"


@dataclass(frozen=True)
class Check:
    """One suite run on one frame. ``frame`` also feeds the report's example rows."""

    suite: str
    frame: pd.DataFrame
    source: str
    columns: tuple[str, ...] | None = None  # the columns GX validates (default: all)


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
            reason = f"applies only when {meta['only_if']} (this run: " + ", ".join(
                f"{k}={flags.get(k)!r}" for k in meta["only_if"]) + ")"
        else:
            active.append({k: v for k, v in expectation.items() if k != "id"})
            continue
        kwargs = expectation.get("kwargs", {})
        columns = [kwargs["column"]] if "column" in kwargs else list(kwargs.get("column_list", []))
        skipped.append({"expectation": expectation["type"], "columns": columns,
                        "description": expectation.get("description"), "reason": reason})
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


def run_flags(params, dataset: str, ingest_summary: dict | None) -> dict:
    """Facts about this run that the suites' ``skip_if`` / ``only_if`` / ``warn_if`` rules test."""
    config = params.dataset(dataset)
    return {
        "time_source": (ingest_summary or {}).get("time_source", "timestamp"),
        "duplicates_allowed": dataset in params.validate_.allow_duplicates,
        "drop_duplicates": config.drop_duplicates,
        "kcore_mode": config.kcore.mode,
    }


# ---------------------------------------------------------------------------------------------
# Derived frames (pure)


def chronological_positions(interactions: pd.DataFrame) -> pd.DataFrame:
    """Each interaction with ``pos``, its rank in the user's timeline (timestamp, then file order)."""
    frame = interactions[["user_id", "item_id", "timestamp", "rating"]].reset_index(drop=True)
    frame = frame.dropna(subset=["user_id", "item_id", "timestamp"])
    # A stable sort on the timestamp alone keeps file order among equal timestamps.
    frame = frame.sort_values("timestamp", kind="stable")
    frame["pos"] = frame.groupby("user_id", sort=False).cumcount()
    return frame


def kcore_counts(
    kept: pd.DataFrame, mode: str, raw: pd.DataFrame | None = None,
    users=None, items=None,
) -> pd.DataFrame:
    """One row per user (and per item in ``iterative`` mode) with its interactions in ``kept``.

    ``users`` / ``items`` pick the ids to report (default: those in ``kept``; absent ones count 0);
    ``raw`` adds each id's count before filtering, for the report.
    """
    parts = []
    for entity, column, ids in (("user", "user_id", users), ("item", "item_id", items)):
        if entity == "item" and mode != "iterative":
            continue
        counts = kept.groupby(column).size()
        if ids is not None:
            counts = counts.reindex(pd.Index(pd.unique(np.asarray(ids, dtype=object))), fill_value=0)
        part = pd.DataFrame({"entity": entity, "id": counts.index.astype(str), "interactions": counts.to_numpy()})
        if raw is not None:
            part["before_kcore"] = part["id"].map(raw.groupby(column).size()).fillna(0).astype("int64")
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def _is_list(value) -> bool:
    return isinstance(value, list | tuple | np.ndarray)


def _lengths(column: pd.Series) -> pd.Series:
    return column.map(lambda v: len(v) if _is_list(v) else pd.NA).astype("Int64")


def _list_facts(frame: pd.DataFrame, positions: pd.DataFrame, items_col: str, labels_col: str,
                like_threshold: float) -> pd.DataFrame:
    """Per sample row, facts about the items of one list column relative to the row's target.

    ``all_before``: every item has an occurrence strictly before the target; ``labels_ok``: each
    such item has an earlier occurrence whose rating agrees with its label; ``last_min`` / ``first_max``:
    the earliest of the items' latest earlier occurrences / the latest of their earliest ones.
    An item rated twice may sit in the profile and again in a window, hence min/max per occurrence.
    """
    cells = frame[items_col]
    lengths = cells.map(lambda v: len(v) if _is_list(v) else 0).to_numpy()
    rows = np.repeat(frame.index.to_numpy(), lengths)
    labels = []
    for items, item_labels in zip(cells, frame[labels_col], strict=True):
        if _is_list(items):
            same = _is_list(item_labels) and len(item_labels) == len(items)
            labels.extend(list(item_labels) if same else [np.nan] * len(items))
    entries = pd.DataFrame({
        "row": rows,
        "entry": np.concatenate([np.arange(n) for n in lengths]) if lengths.sum() else np.array([], int),
        "user_id": frame["user_id"].to_numpy(dtype=object)[rows],
        "item_id": np.asarray([x for v in cells if _is_list(v) for x in v], dtype=object),
        "label": pd.to_numeric(pd.Series(labels, dtype=object), errors="coerce").to_numpy(dtype=float),
        "target_pos": frame["target_pos"].to_numpy(dtype=float, na_value=np.nan)[rows],
    })
    matched = entries.merge(positions[["user_id", "item_id", "pos", "rating"]], on=["user_id", "item_id"], how="left")
    before = matched["pos"] < matched["target_pos"]
    matched["pos_before"] = matched["pos"].where(before)
    liked = (matched["rating"] > like_threshold).astype(float)
    matched["label_ok"] = (matched["label"] == liked).astype(float).where(before)
    per_entry = matched.groupby(["row", "entry"], sort=False).agg(
        first=("pos_before", "min"), last=("pos_before", "max"), label_ok=("label_ok", "max"))
    per_entry["before"] = per_entry["last"].notna()
    by_row = per_entry.groupby(level="row")
    facts = pd.DataFrame({
        "all_before": by_row["before"].all(),
        # Entries with no earlier occurrence are all_before's defect, not a label defect.
        "labels_ok": by_row["label_ok"].min().fillna(1.0) == 1.0,
        "last_min": by_row["last"].min(),
        "first_max": by_row["first"].max(),
    })
    facts = facts.reindex(frame.index)
    facts[["all_before", "labels_ok"]] = facts[["all_before", "labels_ok"]].fillna(True).astype(bool)  # empty lists
    return facts


def samples_frame(samples: pd.DataFrame, interactions: pd.DataFrame, like_threshold: float) -> pd.DataFrame:
    """``samples`` plus the derived columns the ``samples`` suite checks (see ``SAMPLE_CHECK_COLUMNS``).

    Targets are located in the user's timeline by (user, item, timestamp). Where that key repeats
    (duplicates), targets take its occurrences from the latest back, test first: targets are a
    user's last items, so later repeats of a target's key are later targets. A derived flag is
    null where it cannot be judged (target not found, a split missing): each defect counts once.
    """
    key = ["user_id", "target_item", "target_timestamp"]
    positions = chronological_positions(interactions)
    lookup = positions.rename(columns={
        "item_id": "target_item", "timestamp": "target_timestamp", "rating": "observed_rating", "pos": "target_pos"})
    lookup["occurrence"] = lookup.groupby(key, sort=False).cumcount(ascending=False)  # 0 = latest
    out = samples.reset_index(drop=True)
    split_rank = out["split"].map({name: -rank for rank, name in enumerate(SPLITS)}).fillna(1)
    latest_first = out.assign(_rank=split_rank).sort_values("_rank", kind="stable")
    out["occurrence"] = latest_first.groupby(key, sort=False, dropna=False).cumcount()
    out = out.merge(lookup, on=[*key, "occurrence"], how="left").drop(columns="occurrence")
    out["target_pos"] = out["target_pos"].astype("Int64")
    known = out["target_pos"].notna()

    valid_split = out["split"].where(out["split"].isin(SPLITS))
    out["user_splits"] = valid_split.groupby(out["user_id"]).transform("nunique").astype("Int64")
    wide = (out[out["split"].isin(SPLITS)].pivot_table(index="user_id", columns="split", values="target_pos",
                                                      aggfunc="first").reindex(columns=list(SPLITS)))
    ordered = (wide["train"] < wide["valid"]) & (wide["valid"] < wide["test"])
    complete = wide.notna().all(axis=1) & (out.groupby("user_id")["split"].size().reindex(wide.index) == 3)
    out["split_order_ok"] = out["user_id"].map(ordered.astype("boolean").where(complete)).astype("boolean")

    for name in ("history", "profile"):
        out[f"{name}_length"] = _lengths(out[f"{name}_items"])
        out[f"{name}_labels_length"] = _lengths(out[f"{name}_labels"])
    history = _list_facts(out, positions, "history_items", "history_labels", like_threshold)
    profile = _list_facts(out, positions, "profile_items", "profile_labels", like_threshold)
    out["history_before_target"] = history["all_before"].astype("boolean").where(known)
    out["history_labels_ok"] = history["labels_ok"].astype("boolean").where(
        known & (out["history_length"] == out["history_labels_length"]))
    precedes_window = history["last_min"].isna() | profile["first_max"].isna() | (profile["first_max"] < history["last_min"])
    out["profile_before_history"] = (profile["all_before"] & precedes_window).astype("boolean").where(known)
    out["profile_labels_ok"] = profile["labels_ok"].astype("boolean").where(
        known & (out["profile_length"] == out["profile_labels_length"]))
    return out


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


def run_checks(checks: list[Check], parameters: dict, flags: dict, docs_dir: Path | None = None,
               directory: Path | None = None) -> list[dict]:
    """Run each check's suite in one ephemeral GX context; summaries in order; Data Docs into ``docs_dir``."""
    gx = _import_gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    if docs_dir is not None:
        context.add_data_docs_site(site_name=_DOCS_SITE, site_config={
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(Path(docs_dir).resolve())},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        })
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
            gx.ValidationDefinition(name=check.suite, data=batch, suite=suite))
        frame = check.frame[list(check.columns)] if check.columns else check.frame
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = definition.run(batch_parameters={"dataframe": frame},
                                    expectation_parameters=parameters, result_format="SUMMARY")
        outcomes.append(summarize_suite(check.suite, check.source, check.frame, result.to_json_dict(),
                                        skipped, flags, spec.get("meta") or {}))
    if docs_dir is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            context.build_data_docs(site_names=[_DOCS_SITE])
    return outcomes


# ---------------------------------------------------------------------------------------------
# Stage wrapper (I/O)


def _read_table(path: Path, columns: list[str], hint: str) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(path, f"not found: {hint}")
    frame = pd.read_parquet(path)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(path, f"missing column(s) {missing}; expected {columns}", field=missing[0])
    return frame


def _kcore_filter(interactions: pd.DataFrame, config, dedup: bool) -> pd.DataFrame:
    """The interactions the data stage keeps: duplicates out (when it drops them), then its k-core."""
    from reasoningrec.data.kcore import drop_duplicates, kcore

    return kcore(drop_duplicates(interactions) if dedup else interactions, config.kcore.k, config.kcore.mode)


def _interactions_checks(params, dataset: str, out: Path, flags: dict) -> tuple[list[Check], list[str]]:
    path = out / "interactions.parquet"
    inter = _read_table(path, INTERACTION_COLUMNS, f"run `reasoningrec ingest -d {dataset}` first")
    checks = [Check("interactions", inter, str(path), tuple(INTERACTION_COLUMNS))]
    notes = []
    if flags["time_source"] == "file_order":
        notes.append("timestamps are file order (ingest.json time_source: file_order): plausibility check skipped")
    config = params.dataset(dataset)
    counts = kcore_counts(_kcore_filter(inter, config, flags["drop_duplicates"]), config.kcore.mode, raw=inter)
    checks.append(Check("kcore", counts, f"{path} after {config.kcore.mode} k-core (k={config.kcore.k})"))
    return checks, notes


def _samples_checks(params, dataset: str, out: Path, flags: dict) -> tuple[list[Check], list[str]]:
    path = out / "samples.parquet"
    samples = _read_table(path, SAMPLE_COLUMNS, f"run `reasoningrec prepare -d {dataset}` first")
    inter_path = out / "interactions.parquet"
    inter = _read_table(inter_path, INTERACTION_COLUMNS, f"run `reasoningrec ingest -d {dataset}` first")
    frame = samples_frame(samples, inter, params.prepare.like_threshold)
    checks = [Check("samples", frame, str(path), tuple(SAMPLE_CHECK_COLUMNS))]
    # Every user (and, iterative, every item) a sample uses must be in the data stage's k-core.
    config = params.dataset(dataset)
    kept = _kcore_filter(inter, config, flags["drop_duplicates"])
    items = None
    if config.kcore.mode == "iterative":
        lists = [frame["target_item"]] + [frame[c].explode() for c in ("history_items", "profile_items")]
        items = pd.concat(lists).dropna().unique()
    counts = kcore_counts(kept, config.kcore.mode, raw=inter, users=samples["user_id"].dropna().unique(), items=items)
    checks.append(Check("kcore", counts, f"users/items of {path} in the k-core of {inter_path.name} (k={config.kcore.k})"))
    return checks, []


@contextlib.contextmanager
def _fresh_dir(target: Path) -> Iterator[Path]:
    """A temporary folder beside ``target`` that replaces it (whole) when the block succeeds."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield tmp
        old = target.with_name(f"{tmp.name}.old")
        if target.exists():
            target.rename(old)
        tmp.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_validation(params, dataset: str, stage: str, out_dir: Path | None = None) -> dict:
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
    ingest_path = out / "ingest.json"
    flags = run_flags(params, dataset, read_json(ingest_path) if ingest_path.is_file() else None)
    build = _interactions_checks if stage == "interactions" else _samples_checks
    checks, notes = build(params, dataset, out, flags)
    if not ingest_path.is_file():
        notes.append(f"{ingest_path} not found: timestamps assumed to be Unix seconds")
    folder = out / "validation"
    docs = folder / f"data_docs_{stage}"
    if params.validate_.data_docs:
        with _fresh_dir(docs) as staging:
            suites = run_checks(checks, suite_parameters(params, dataset), flags, staging)
    else:
        suites = run_checks(checks, suite_parameters(params, dataset), flags)
    summary = {
        "dataset": dataset,
        "stage": stage,
        "success": all(s["success"] for s in suites),
        "flags": flags,
        "parameters": suite_parameters(params, dataset),
        "suites": suites,
        "notes": notes,
        "results_path": str(folder / f"validate_{stage}.json"),
        "data_docs": str(docs / "index.html") if params.validate_.data_docs else None,
        "seconds": round(time.perf_counter() - started, 3),
    }
    write_json(summary["results_path"], summary)
    if not summary["success"]:
        raise ValidationFailed(format_report(summary))
    return summary
