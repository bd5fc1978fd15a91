"""``train.processes``: one training call that launches itself on N data-parallel processes.

``run_train`` in a plain process with ``train.processes`` above 1 runs

    python -m torch.distributed.run --standalone --nproc-per-node N -m reasoningrec train ...

(the launcher ``accelerate launch --multi_gpu`` wraps; it also runs CPU processes on gloo, which
``accelerate launch --cpu`` does not), waits for it and reads the ``train.json`` rank 0 wrote. The
launched processes see ``WORLD_SIZE`` and train in place (:mod:`reasoningrec.training.distributed`).
The settings travel as a JSON file beside the run; the processes' output is streamed to this
process's stderr and kept in ``<out_dir>/train-launch.log``.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections import deque
from pathlib import Path

from reasoningrec.errors import ConfigError
from reasoningrec.io import write_json
from reasoningrec.training.adapter import TrainingError

log = logging.getLogger(__name__)

LAUNCH_LOG = "train-launch.log"
LAUNCH_SETTINGS = ".train-launch-settings.json"
TAIL_LINES = 30  # lines of the processes' output quoted in the error of a failed launch


def resolve_processes(setting: int | str, gpu_count: int) -> int:
    """Processes for ``train.processes``: ``auto`` = one per visible GPU (1 without a GPU); a number
    is taken as it is, but never more than the visible GPUs (without a GPU: that many CPU
    processes, which prove the path and speed nothing up)."""
    if setting == "auto":
        return max(1, gpu_count)
    processes = int(setting)
    if processes < 1:
        raise ConfigError(f"train.processes must be >= 1 or auto, got {setting!r}")
    if gpu_count and processes > gpu_count:
        raise ConfigError(
            f"train.processes={processes} but only {gpu_count} GPU(s) are visible "
            "(CUDA_VISIBLE_DEVICES); use auto or at most that many"
        )
    return processes


def launch_command(
    processes: int,
    *,
    dataset: str,
    method: str,
    k_shots: int,
    seed: int,
    out_dir: Path,
    settings_file: Path,
    python: str | None = None,
) -> list[str]:
    """The command that trains one adapter on ``processes`` processes of this host."""
    return [
        python or sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={processes}",
        "-m",
        "reasoningrec",
        "train",
        "-d",
        dataset,
        "--method",
        method,
        "--k",
        str(k_shots),
        "--seed",
        str(seed),
        "--out",
        str(out_dir),
        "--params",
        str(settings_file),
    ]


def launch_env(env, processes: int, cpu_count: int | None = None) -> dict[str, str]:
    """The launched processes' environment: this one, with the host's cores split between them
    (``OMP_NUM_THREADS``, unless set; torchrun would otherwise give each process one thread)."""
    cores = cpu_count or os.cpu_count() or 1
    return {"OMP_NUM_THREADS": str(max(1, cores // processes)), **env}


def _end_with_parent() -> None:
    """In the launcher, before it starts: SIGTERM when the process that launched it dies (a grid
    worker ended at its hard deadline), which torchrun passes on to every rank."""
    import ctypes
    import signal

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def launch_training(params, dataset: str, method: str, k_shots: int, seed: int, out_dir: Path, processes: int) -> Path:
    """Train on ``processes`` processes (:func:`launch_command`) and wait; raises
    :class:`TrainingError` with the last lines of their output when the launch fails. Returns the
    log file."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    settings_file = write_json(out_dir / LAUNCH_SETTINGS, params.model_dump(mode="json", by_alias=True))
    command = launch_command(
        processes,
        dataset=dataset,
        method=method,
        k_shots=k_shots,
        seed=seed,
        out_dir=out_dir,
        settings_file=settings_file,
    )
    log_path = out_dir / LAUNCH_LOG
    log.info("training on %d processes: %s (output in %s)", processes, " ".join(command), log_path)
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    try:
        with open(log_path, "w", encoding="utf-8") as sink:
            process = subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                bufsize=1,
                errors="replace",
                env=launch_env(os.environ, processes),
                preexec_fn=_end_with_parent if sys.platform.startswith("linux") else None,
            )
            assert process.stdout is not None
            try:
                for line in process.stdout:
                    sink.write(line)
                    sink.flush()
                    sys.stderr.write(line)
                    tail.append(line.rstrip("\n"))
                code = process.wait()
            except BaseException:  # interrupted here: the launcher (and through it every rank) ends too
                process.terminate()
                process.wait()
                raise
    finally:
        settings_file.unlink(missing_ok=True)
    if code != 0:
        raise TrainingError(
            f"training on {processes} processes failed (exit code {code}); full output in "
            f"{log_path}; last lines:\n" + "\n".join(tail)
        )
    return log_path
