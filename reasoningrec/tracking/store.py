"""Where runs go: the tracking store, its client, the cross-process write lock, names and URIs.

Everything goes through ``MlflowClient`` with explicit run ids: the fluent API keeps its active run
per thread, and runs are logged from Prefect worker threads too. The one fluent call,
``mlflow.pyfunc.log_model``, runs inside :func:`fluent_run`.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from reasoningrec.config import Params

CHAMPION = "champion"


def disable_telemetry() -> None:
    """MLflow phones home by default; the pipeline runs on closed networks."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def tracking_uri(params: Params) -> str:
    """``$MLFLOW_TRACKING_URI`` when set, else ``tracking.tracking_uri`` (relative to the cwd)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or params.tracking.tracking_uri


# ``tracking.tracking_uri`` values (and ``$REASONINGREC_TRACKING`` values) that turn tracking off.
TRACKING_OFF = frozenset({"none", "off", "false", "0", "disabled"})


def tracking_enabled(params: Params) -> bool:
    """False when ``$REASONINGREC_TRACKING=off`` or the tracking URI is ``none``.

    Without tracking, stages write every file but log nothing and never import mlflow; their
    summaries keep what :func:`reasoningrec.tracking.runs.log_run` needs, to log the run later
    (:func:`reasoningrec.run_logging.log_saved_run`).
    """
    if os.environ.get("REASONINGREC_TRACKING", "").strip().lower() in TRACKING_OFF:
        return False
    return tracking_uri(params).strip().lower() not in TRACKING_OFF


def artifact_root(params: Params) -> str | None:
    """Artifact location for a new experiment: a local folder URI for local stores, else the server's."""
    uri = tracking_uri(params)
    if uri.startswith(("http://", "https://", "databricks")):
        return None  # a tracking server decides where artifacts live
    location = params.tracking.artifact_location
    if "://" in location:
        return location
    return Path(location).resolve().as_uri()


def get_client(params: Params) -> MlflowClient:
    """A client bound to this run's tracking and registry store (no global MLflow state touched)."""
    disable_telemetry()
    from mlflow import MlflowClient

    uri = tracking_uri(params)
    return MlflowClient(tracking_uri=uri, registry_uri=os.environ.get("MLFLOW_REGISTRY_URI") or uri)


_STORE_LOCKS: dict[str, Any] = {}
_STORE_LOCKS_GUARD = threading.Lock()


def store_lock(params: Params):
    """A lock shared by every process that writes to this run's local SQLite store (else a no-op).

    SQLite admits one writer at a time and answers "database is locked" to a writer that waits past
    its busy timeout (or at once, to avoid a deadlock between two upgrading readers), so processes
    logging runs at the same time (the quality run's worker pool, Prefect's process runner) take
    this file lock (``<db>.lock``) around each run's writes. Reentrant within a thread.
    """
    uri = tracking_uri(params)
    db = uri.removeprefix("sqlite:///").split("?", 1)[0] if uri.startswith("sqlite:///") else ""
    if not db or db == ":memory:":
        return contextlib.nullcontext()
    path = f"{Path(db).resolve()}.lock"
    from filelock import FileLock

    with _STORE_LOCKS_GUARD:  # one FileLock object per file, or re-entry from one thread would block
        if path not in _STORE_LOCKS:
            _STORE_LOCKS[path] = FileLock(path)
        return _STORE_LOCKS[path]


def serialised(func):
    """Run ``func(params, ...)`` holding :func:`store_lock` (one process writes at a time)."""

    @functools.wraps(func)
    def locked(params, *args, **kwargs):
        with store_lock(params):
            return func(params, *args, **kwargs)

    return locked


_GLOBAL_STORE = threading.RLock()


@contextlib.contextmanager
def global_store(params: Params):
    """MLflow's process-wide tracking and registry URIs pointed at this run's store, for the duration.

    Two MLflow 3 paths ignore a client's own URIs: ``mlflow.pyfunc.log_model`` writes through the
    global tracking URI, and the SQL registry resolves ``models:/<model_id>`` sources through it
    too. This holds a process lock (one thread at a time), sets the global URIs, and restores them,
    and ``$MLFLOW_TRACKING_URI`` / ``$MLFLOW_REGISTRY_URI``, afterwards. Callers hold
    :func:`store_lock` against other processes.
    """
    import mlflow
    from mlflow.tracking._model_registry import utils as registry_state
    from mlflow.tracking._tracking_service import utils as tracking_state

    uri = tracking_uri(params)
    registry = os.environ.get("MLFLOW_REGISTRY_URI") or uri
    with _GLOBAL_STORE:
        saved_env = {name: os.environ.get(name) for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
        # MLflow keeps the unresolved global URIs in these module variables and has no getter for them.
        saved_tracking, saved_registry = tracking_state._tracking_uri, registry_state._registry_uri
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(registry)
        try:
            yield
        finally:
            mlflow.set_tracking_uri(saved_tracking)
            mlflow.set_registry_uri(saved_registry)
            for name, value in saved_env.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


@contextlib.contextmanager
def fluent_run(params: Params, run_id: str):
    """Resume ``run_id`` as the calling thread's active fluent run, inside :func:`global_store`.

    The active run is per thread, so worker threads can log through this.
    """
    import mlflow

    with global_store(params), mlflow.start_run(run_id=run_id):
        yield


def experiment_id(client: MlflowClient, params: Params) -> str:
    """Id of ``tracking.experiment``, created (with the configured artifact folder) on first use."""
    name = params.tracking.experiment
    found = client.get_experiment_by_name(name)
    if found is not None:
        if found.lifecycle_stage == "deleted":
            client.restore_experiment(found.experiment_id)
        return found.experiment_id
    try:
        return client.create_experiment(name, artifact_location=artifact_root(params))
    except Exception:
        # Another process created it between the lookup and the create.
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def registered_model_name(params: Params, dataset: str) -> str:
    """``reasoningrec-<dataset>``: one registered model per dataset."""
    return f"{params.tracking.model_prefix}-{dataset}"


def model_uri(params: Params, dataset: str, alias: str = CHAMPION) -> str:
    """``models:/reasoningrec-<dataset>@<alias>``: what every loader loads."""
    return f"models:/{registered_model_name(params, dataset)}@{alias}"


def ui_command(params: Params, host: str = "127.0.0.1", port: int = 5000) -> list[str]:
    """The ``mlflow ui`` command line for this project's store (bound to localhost by default)."""
    import shutil
    import sys

    executable = Path(sys.executable).with_name("mlflow")
    mlflow_bin = str(executable) if executable.is_file() else (shutil.which("mlflow") or "mlflow")
    command = [
        mlflow_bin,
        "ui",
        "--backend-store-uri",
        tracking_uri(params),
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    root = artifact_root(params)
    if root is not None:
        # Where runs created from the UI store artifacts; runs logged by the pipeline keep their own.
        command += ["--artifacts-destination", root]
    return command
