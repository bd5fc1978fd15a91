"""The work-pool route of prefect.yaml end to end: a Prefect server on 127.0.0.1, a process work pool,
`prefect deploy --all` on a terminal without an answer to any prompt, a worker started elsewhere, one
deployment run to completion on the real Fashion data; and the served route beside it, untouched."""

from __future__ import annotations

import os
import pty
import select
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from dvc_support import BIN, make_project

REPO = Path(__file__).resolve().parents[2]
DEPLOYMENT = "nightly-validation-fashion"
FLOW = "ingest-validate"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _in_terminal(args: list[str], cwd: Path, env: dict, timeout: float) -> tuple[int, str]:
    """Run ``args`` with a terminal as stdout/stderr (so Prefect may prompt) and no input at all: a
    prompt reads end-of-file and fails the command instead of waiting."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        args,
        cwd=cwd,
        env={**env, "TERM": "xterm", "COLUMNS": "200"},
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
        close_fds=True,
    )
    os.close(follower)
    output, deadline = bytearray(), time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # the terminal closed: the command ended
                    break
                if not chunk:
                    break
                output += chunk
            elif process.poll() is not None:
                break
        else:
            process.kill()
            raise AssertionError(f"{' '.join(args)} still running after {timeout} s:\n{output.decode()[-3000:]}")
    finally:
        os.close(leader)
    return process.wait(timeout=30), output.decode("utf-8", errors="replace")


def _run(args: list[str], cwd: Path, env: dict, timeout: float = 120) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(args)}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


@pytest.fixture
def prefect_server(tmp_path):
    """`prefect server start --host 127.0.0.1` on a free port with its own PREFECT_HOME; its env."""
    home = tmp_path / "prefect-home"
    home.mkdir()
    url = f"http://127.0.0.1:{_free_port()}"
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": f"{url}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
    }
    for name in ("PREFECT_LOCAL_STORAGE_PATH", "REASONINGREC_DATA_DIR", "REASONINGREC_PARAMS"):
        env.pop(name, None)
    log = open(tmp_path / "server.log", "w")  # noqa: SIM115 (closed below)
    server = subprocess.Popen(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", url.rsplit(":", 1)[1]],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/health", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"prefect server did not start:\n{(tmp_path / 'server.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield env
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server's own process group only
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        log.close()


def _deployment(env: dict, name: str):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: env["PREFECT_API_URL"]}), get_client(sync_client=True) as client:
        return client.read_deployment_by_name(name)


@pytest.mark.data
def test_deploy_all_without_prompts_then_a_worker_runs_one_deployment(prefect_server, shared_data, tmp_path):
    env = prefect_server
    project, _ = make_project(tmp_path / "project", shared_data, tmp_path / "no-model", prepare={"max_users": 20})
    shutil.copy(REPO / "prefect.yaml", project / "prefect.yaml")
    prefect = str(BIN / "prefect")
    _run([prefect, "work-pool", "create", "local", "--type", "process"], project, env)

    code, output = _in_terminal([prefect, "deploy", "--all"], project, env, timeout=180)
    assert code == 0, output[-3000:]
    specs = yaml.safe_load((project / "prefect.yaml").read_text(encoding="utf-8"))["deployments"]
    assert output.count("successfully created") == len(specs) == 12
    deployed = _deployment(env, f"{FLOW}/{DEPLOYMENT}")
    assert deployed.work_pool_name == "local"
    assert deployed.pull_steps == [
        {"prefect.deployments.steps.set_working_directory": {"directory": str(project.resolve())}}
    ]  # where `prefect deploy` ran, found by the build step

    # A worker started in another folder runs the deployment in the project (the pull step).
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    watch = subprocess.Popen(
        [prefect, "deployment", "run", f"{FLOW}/{DEPLOYMENT}", "--watch", "--watch-timeout", "300"],
        cwd=elsewhere,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        time.sleep(2)  # the run exists before the worker's one poll
        _run([prefect, "worker", "start", "--pool", "local", "--run-once"], elsewhere, env, timeout=300)
        watched = watch.communicate(timeout=120)[0]
    finally:
        if watch.poll() is None:
            watch.kill()
    assert watch.returncode == 0 and "Completed" in watched, watched[-3000:]
    work = project / "data" / "work" / "fashion"
    for name in ("ingest", "validate_interactions", "prepare", "validate_samples"):
        assert (work / ".completion" / f"{name}.json").is_file(), name
    prepare = yaml.safe_load((work / ".completion" / "prepare.json").read_text(encoding="utf-8"))
    assert prepare["runner"] == "prefect" and prepare["summary"]["users"] == 20
    assert not list(elsewhere.iterdir())  # nothing was written where the worker was started

    # The served route registers its own deployment beside the deployed one and changes nothing of it.
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from reasoningrec.orchestration.deployments import build_deployments, read_deployments, served_name

    spec = next(s for s in read_deployments(project / "prefect.yaml") if s.name == DEPLOYMENT)
    [served] = build_deployments([spec])
    with temporary_settings(updates={PREFECT_API_URL: env["PREFECT_API_URL"]}):
        served.apply()
    again = _deployment(env, f"{FLOW}/{DEPLOYMENT}")
    assert (again.id, again.work_pool_name, again.pull_steps) == (deployed.id, "local", deployed.pull_steps)
    other = _deployment(env, f"{FLOW}/{served_name(DEPLOYMENT)}")
    assert other.id != deployed.id and other.work_pool_name is None
