"""A stage call is done only when its completion record says so, and the record matches the disk.

Every runner (the CLI commands, ``reasoningrec run``, the Prefect flows, the grid, and ``dvc repro``
through the CLI) executes a :class:`~reasoningrec.pipeline.Call` with :func:`execute`, which applies
one rule:

1. The record ``<work_dir>/<dataset>/.completion/<call>.json`` is deleted before the stage runs, and
   written last, atomically, after all its outputs: a stage killed between two outputs has no record.
2. The record holds the digests of the call's inputs (and raw files), its settings (the
   ``params.yaml`` keys of the stage), its code (the project paths of the stage) and its outputs.
3. A call is **up to date** only when its record exists and every one of those digests equals what is
   on disk now. Then it is skipped and its recorded summary returned; otherwise it runs.
4. A call runs only when every call upstream of it (the producers of its inputs, and the validation
   gates before it in the plan) is up to date; else :class:`StaleInputs` names the stage to run
   (``allow_stale`` skips this check). A failed validation writes no record, so nothing below it runs.

Besides the record, each call's numbers go to ``<paths.metrics_dir>/<dataset>/<call>.json``, where git
and DVC see them (``dvc metrics show/diff``, ``dvc exp show``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from reasoningrec.errors import ReasoningRecError
from reasoningrec.io import file_sha256, json_default, read_json, remove_stale_temps, write_json
from reasoningrec.pipeline import Call, gates_before, plan, producers, raw_paths, section_values

if TYPE_CHECKING:
    from reasoningrec.config import Params
    from reasoningrec.summary import Summary

S = TypeVar("S", bound="Summary")

log = logging.getLogger(__name__)

RECORD_DIR = ".completion"
VERSION = 1
PROJECT_ROOT = Path(__file__).resolve().parents[1]
_DIGESTS: dict[tuple[str, int, int, int], str] = {}  # (path, inode, size, mtime_ns) -> sha256, per process


class StaleInputs(ReasoningRecError):
    """An input of a call has no valid completion record: the stage that writes it must run first."""


@dataclass(frozen=True)
class Verdict:
    up_to_date: bool
    reason: str


@dataclass(frozen=True)
class Outcome:
    """What :func:`execute` did: ``ran`` (or skipped as up to date), the summary, the record.

    ``summary`` is the JSON the record holds (the same whether the call ran or was skipped);
    :meth:`summary_as` gives it as the stage's typed summary."""

    call: Call
    ran: bool
    summary: dict[str, Any]
    seconds: float
    record: Path

    def summary_as(self, kind: type[S]) -> S:
        """The summary as ``kind`` (the stage's :class:`~reasoningrec.summary.Summary`); a record
        that does not fit is a :class:`~reasoningrec.errors.DataError` naming it and the field."""
        return kind.from_json(self.summary, self.record)


# --------------------------------------------------------------------------- digests


def path_digest(path: Path) -> str | None:
    """SHA-256 of a file, or of a folder's relative paths and file digests (sorted); None if absent."""
    if path.is_file():
        stat = path.stat()
        key = (str(path.resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns)
        if key not in _DIGESTS:
            _DIGESTS[key] = file_sha256(path)
        return _DIGESTS[key]
    if path.is_dir():
        digest = hashlib.sha256()
        for child in sorted(p for p in path.rglob("*") if p.is_file() and not _ignored(p)):
            digest.update(child.relative_to(path).as_posix().encode())
            digest.update((path_digest(child) or "").encode())
        return digest.hexdigest()
    return None


def _ignored(path: Path) -> bool:
    return "__pycache__" in path.parts or path.suffix == ".pyc" or path.name.endswith(".tmp")


def code_digest(paths: Iterable[str]) -> str:
    """One digest of the project files a stage's result depends on (missing paths count as absent)."""
    digest = hashlib.sha256()
    for relative in sorted(paths):
        digest.update(relative.encode())
        digest.update((path_digest(PROJECT_ROOT / relative) or "absent").encode())
    return digest.hexdigest()


def _digest(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=json_default)
    return hashlib.sha256(text.encode()).hexdigest()


# --------------------------------------------------------------------------- records


def record_path(params: Params, call: Call) -> Path:
    return params.work_dir(call.dataset) / RECORD_DIR / f"{call.name}.json"


def metrics_path(params: Params, call: Call) -> Path:
    return params.metrics_dir / call.dataset / f"{call.name}.json"


def expected_state(params: Params, call: Call) -> dict[str, Any]:
    """What a valid record of ``call`` must hold now: settings, code, input and raw-file digests."""
    work = params.work_dir(call.dataset)
    settings = section_values(params, call.stage.sections, call.dataset)
    return {
        "version": VERSION,
        "stage": call.stage.name,
        "options": json.loads(json.dumps(dict(call.options), default=json_default)),
        "settings": _digest(settings),
        "code": code_digest(call.stage.code),
        "inputs": {name: path_digest(work / name) for name in call.input_names()},
        # Raw files by content only: pointing the data dir at another copy keeps the record valid.
        "raw": [path_digest(p) for p in raw_paths(params, call.dataset)] if call.stage.raw_input else [],
    }


def read_record(params: Params, call: Call) -> dict[str, Any] | None:
    path = record_path(params, call)
    try:
        record = read_json(path)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def check(params: Params, call: Call) -> Verdict:
    """Whether ``call`` is up to date: its record exists and matches the disk and the settings."""
    record = read_record(params, call)
    if record is None:
        return Verdict(False, "never completed (no completion record)")
    expected = expected_state(params, call)
    for key in ("version", "stage", "options", "settings", "code", "raw"):
        if record.get(key) != expected[key]:
            return Verdict(False, f"its {key} changed since it last ran")
    for name, digest in expected["inputs"].items():
        if (record.get("inputs") or {}).get(name) != digest:
            return Verdict(False, f"input {name} changed since it last ran" if digest else f"input {name} is missing")
    work = params.work_dir(call.dataset)
    for name in call.output_names():
        recorded = (record.get("outputs") or {}).get(name)
        if recorded is None or recorded != path_digest(work / name):
            return Verdict(False, f"output {name} is missing or not the one it wrote")
    return Verdict(True, f"up to date ({record_path(params, call)})")


def write_record(params: Params, call: Call, summary: Mapping[str, Any], seconds: float, runner: str) -> Path:
    """Write the record last: the state the call ran with, plus the digests of its outputs now."""
    work = params.work_dir(call.dataset)
    missing = [name for name in call.output_names() if not (work / name).exists()]
    if missing:
        raise ReasoningRecError(f"stage {call.name!r} of {call.dataset!r} finished without writing {missing}")
    record = {
        **expected_state(params, call),
        "call": call.name,
        "dataset": call.dataset,
        "outputs": {name: path_digest(work / name) for name in call.output_names()},
        "summary": dict(summary),
        "seconds": round(seconds, 2),
        "runner": runner,
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    return write_json(record_path(params, call), record)


def outputs_intact(params: Params, call: Call) -> Verdict:
    """Whether ``call`` finished and its outputs are still the ones it wrote (inputs and settings
    not compared): a run brought back from another machine, to be logged where MLflow is."""
    record = read_record(params, call)
    if record is None:
        return Verdict(False, "never completed (no completion record)")
    work = params.work_dir(call.dataset)
    for name in call.output_names():
        recorded = (record.get("outputs") or {}).get(name)
        if recorded is None or recorded != path_digest(work / name):
            return Verdict(False, f"output {name} is missing or not the one it wrote")
    return Verdict(True, f"finished ({record_path(params, call)})")


def amend_outputs(params: Params, call: Call, summary: Mapping[str, Any]) -> Path:
    """Re-record the outputs of a finished call after a step that adds to them without changing its
    result (logging a run made with tracking off writes its run id into its summary file); the rest
    of the record stays as it was. Only a call whose outputs were intact before that step qualifies."""
    record = read_record(params, call)
    if record is None:
        raise ReasoningRecError(f"stage {call.name!r} of {call.dataset!r} has no completion record to amend")
    work = params.work_dir(call.dataset)
    record["outputs"] = {name: path_digest(work / name) for name in call.output_names()}
    record["summary"] = dict(summary)
    record["amended"] = datetime.now(UTC).isoformat(timespec="seconds")
    return write_json(record_path(params, call), record)


def invalidate(params: Params, call: Call) -> None:
    """Delete a call's record (before it runs: a run that does not finish leaves none)."""
    record_path(params, call).unlink(missing_ok=True)


# --------------------------------------------------------------------------- upstream


def upstream(call: Call, calls: Sequence[Call]) -> list[Call]:
    """The calls ``call`` needs: the producers of its inputs and the validation gates before it."""
    made_by = producers(calls)
    needed = [made_by[name] for name in call.input_names() if name in made_by and made_by[name] != call]
    needed += gates_before(call, calls)
    return list({c.name: c for c in needed}.values())


def require_upstream(params: Params, call: Call, calls: Sequence[Call]) -> None:
    """Raise :class:`StaleInputs` unless every call upstream of ``call`` (transitively) is up to date;
    the message names the earliest such call of the plan: the one to run first."""
    needed: dict[str, Call] = {}
    pending = upstream(call, calls)
    while pending:
        found = pending.pop()
        if found.name not in needed:
            needed[found.name] = found
            pending.extend(upstream(found, calls))
    order = {c.name: i for i, c in enumerate(calls)}
    for needed_call in sorted(needed.values(), key=lambda c: order.get(c.name, len(order))):
        verdict = check(params, needed_call)
        if not verdict.up_to_date:
            what = "is not up to date"
            report = params.work_dir(needed_call.dataset) / (needed_call.summary_name() or "")
            if needed_call.stage.gate and report.is_file():
                failed = _failed_validation(report)
                what = f"{'failed' if failed else 'is not up to date'} (its report: {report})"
            raise StaleInputs(
                f"{call.name} ({call.dataset}): upstream stage {needed_call.name} {what}: {verdict.reason}. "
                f"Run `{needed_call.command()}` first (or the whole plan with `reasoningrec run -d {call.dataset}`); "
                "--allow-stale runs it anyway"
            )


def _failed_validation(report: Path) -> bool:
    try:
        return read_json(report).get("success") is False
    except (OSError, ValueError, AttributeError):
        return False


# --------------------------------------------------------------------------- running


def execute(
    params: Params,
    call: Call,
    *,
    calls: Sequence[Call] | None = None,
    force: bool = False,
    allow_stale: bool = False,
    runner: str = "cli",
    extra: Mapping[str, Any] | None = None,
    action: Callable[[], Any] | None = None,
) -> Outcome:
    """Run ``call`` unless it is up to date; return what happened. ``extra``: more keyword arguments
    for the entry point (not part of the call's identity, e.g. a ``command`` tag). ``action``: what
    produces the outputs instead of the stage's entry point (e.g. merging a sharded run's pieces)."""
    from reasoningrec.pipeline import invoke

    work = params.work_dir(call.dataset)
    folders: dict[Path, list[str]] = {}
    for name in call.output_names():
        folders.setdefault((work / name).parent, []).append((work / name).name)
    for folder, names in folders.items():
        remove_stale_temps(folder, names)  # only this call's outputs: other calls may write beside them
    calls = list(calls) if calls is not None else [*plan(params, call.dataset, methods=[], baselines=False), call]
    if not allow_stale:
        require_upstream(params, call, calls)
    verdict = check(params, call)
    if verdict.up_to_date and not force:
        summary = read_record(params, call)["summary"]
        write_metrics(params, call, summary)
        log.debug("%s %s: %s", call.dataset, call.name, verdict.reason)
        return Outcome(call, False, summary, 0.0, record_path(params, call))
    log.debug("%s %s: running (%s)", call.dataset, call.name, "forced" if verdict.up_to_date else verdict.reason)
    invalidate(params, call)
    started = time.perf_counter()
    result = action() if action is not None else invoke(call, params, extra)
    seconds = time.perf_counter() - started
    summary = (
        result.to_json()
        if hasattr(result, "to_json")
        else json.loads(json.dumps(dict(result or {}), default=json_default))
    )
    path = write_record(params, call, summary, seconds, runner)
    write_metrics(params, call, summary)
    return Outcome(call, True, summary, seconds, path)


def write_metrics(params: Params, call: Call, summary: Mapping[str, Any]) -> Path:
    """The call's numbers (an experiment's metrics; a data stage's counts), for git and DVC."""
    numbers = summary.get("metrics") if call.stage.name == "experiment" else summary
    return write_json(metrics_path(params, call), numeric_tree(numbers or {}))


def numeric_tree(data: Any) -> Any:
    """Only the numbers of a JSON tree (nested mappings kept; lists, strings and booleans dropped)."""
    if isinstance(data, Mapping):
        kept = {str(k): numeric_tree(v) for k, v in data.items()}
        return {k: v for k, v in kept.items() if v is not None and v != {}}
    if isinstance(data, bool) or not isinstance(data, int | float):
        return None
    return data
