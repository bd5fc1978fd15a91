"""Data-parallel training: which process does what, how work is split and how results come back.

A training launched on N processes (``torchrun``, ``accelerate launch``: one process per GPU, or
CPU processes on gloo) runs :func:`reasoningrec.training.train.train_adapter` in every process. The
Trainer shards the training batches itself; this module holds the rest of the contract:

* the **global batch** stays ``train.batch_size x train.grad_accum`` records per optimizer step
  whatever N is (:func:`per_process_batch`), so N only changes the speed, not the recipe;
* the **validation prompts** are dealt out longest first, round-robin, so every process scores a
  similar share of tokens (:func:`reasoningrec.sharding.shard_positions`); each process scores its
  shard, the scores of all shards are gathered on every process and put back in input order
  (:func:`merge_shards`), so the AUC is the one a single process computes on all prompts;
* **decisions and files** belong to rank 0: it computes the AUC and the early-stopping state and
  broadcasts them; it alone writes the adapter, checkpoints' callback state, ``train.json``; the
  others wait for it at a barrier (:func:`on_main`).

:class:`Single` is the one-process case (every operation is the identity); :class:`TorchComm` is
``torch.distributed``'s default process group. Both implement :class:`Comm`, so the logic is tested
on CPU with fakes and once for real on two gloo processes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import numpy as np

from reasoningrec.errors import ConfigError
from reasoningrec.sharding import shard_positions

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    """This process's place in a launch: global rank, number of processes, rank on this host."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def world_from_env(env: Mapping[str, str] | None = None) -> World:
    """The launch this process belongs to, from the variables ``torchrun``/``accelerate launch`` set
    (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``); a plain process is rank 0 of 1."""
    env = os.environ if env is None else env
    try:
        size = int(env.get("WORLD_SIZE", "1"))
        rank = int(env.get("RANK", "0"))
        local = int(env.get("LOCAL_RANK", str(rank)))
    except ValueError as exc:
        raise ConfigError(f"RANK/WORLD_SIZE/LOCAL_RANK must be integers: {exc}") from None
    if size < 1 or not 0 <= rank < size:
        raise ConfigError(f"RANK={rank} is not within WORLD_SIZE={size}")
    return World(rank, size, local)


# --------------------------------------------------------------------------- splitting work


def per_process_batch(batch_size: int, grad_accum: int, processes: int) -> tuple[int, int]:
    """(micro-batch, accumulation steps) per process so that ``processes`` of them make the same
    global batch ``batch_size x grad_accum`` as one process.

    The micro-batch is kept as large as possible but never above ``batch_size`` (memory per device
    never grows): accumulation shrinks first, e.g. 2 x 4 on 2 processes -> 2 x 2; 8 x 1 -> 4 x 1.
    """
    if min(batch_size, grad_accum, processes) < 1:
        raise ValueError("batch_size, grad_accum and processes must be >= 1")
    total = batch_size * grad_accum
    for micro in range(batch_size, 0, -1):
        if total % (micro * processes) == 0:
            return micro, total // (micro * processes)
    raise ConfigError(
        f"train.batch_size x train.grad_accum = {total} records per optimizer step cannot be split "
        f"evenly over {processes} processes (make it a multiple of {processes})"
    )


def merge_shards(n: int, parts: Sequence[tuple[Sequence[int], Sequence[float]]]) -> np.ndarray:
    """Values of ``n`` items in input order from ``(positions, values)`` of every shard; raises when
    a position is missing, repeated or out of range (a shard was lost or scored twice)."""
    merged = np.full(n, np.nan, dtype=np.float64)
    seen = np.zeros(n, dtype=bool)
    for positions, values in parts:
        positions = np.asarray(positions, dtype=np.int64)
        if len(positions) != len(values):
            raise ValueError(f"a shard has {len(positions)} positions but {len(values)} values")
        if len(positions) and (positions.min() < 0 or positions.max() >= n):
            raise ValueError(f"shard positions out of range 0..{n - 1}")
        if seen[positions].any() or len(np.unique(positions)) != len(positions):
            raise ValueError("a position is in more than one shard")
        seen[positions] = True
        merged[positions] = np.asarray(values, dtype=np.float64)
    if not seen.all():
        raise ValueError(f"{int((~seen).sum())} of {n} positions are in no shard")
    return merged


# --------------------------------------------------------------------------- collectives


class Comm(Protocol):
    """The collectives the training needs; every process calls each one at the same point."""

    rank: int
    size: int

    def gather(self, obj: Any) -> list[Any]:
        """Every process's ``obj``, by rank, on every process."""
        ...

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every process."""
        ...

    def barrier(self) -> None: ...


@dataclass(frozen=True)
class Single:
    """One process: gather, broadcast and barrier are the identity."""

    rank: int = 0
    size: int = 1

    def gather(self, obj: Any) -> list[Any]:
        return [obj]

    def broadcast(self, obj: Any) -> Any:
        return obj

    def barrier(self) -> None:
        return None


class TorchComm:
    """The default ``torch.distributed`` process group (gloo on CPU, NCCL on GPUs)."""

    def __init__(self):
        import torch.distributed as dist

        self._dist = dist
        self.rank, self.size = dist.get_rank(), dist.get_world_size()

    def gather(self, obj: Any) -> list[Any]:
        out: list[Any] = [None] * self.size
        self._dist.all_gather_object(out, obj)
        return out

    def broadcast(self, obj: Any) -> Any:
        box = [obj]
        self._dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        self._dist.barrier()


def join_process_group(world: World, cuda: bool) -> Comm:
    """The collectives of this launch: :class:`Single` alone, else the process group the Trainer
    will use, initialised now (accelerate's ``PartialState``: gloo on CPU, NCCL with one GPU per
    local rank) so that the steps before training can already wait for rank 0."""
    if world.size == 1:
        return Single()
    from accelerate import PartialState

    PartialState(cpu=not cuda)
    return TorchComm()


def current_comm() -> Comm:
    """:class:`TorchComm` inside an initialised process group of several processes, else :class:`Single`."""
    try:
        import torch.distributed as dist
    except ImportError:  # pragma: no cover - torch is a dependency
        return Single()
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return TorchComm()
    return Single()


def on_main(comm: Comm, work: Callable[[], T]) -> T | None:
    """Run ``work`` on rank 0 only; every process leaves when it is done (a barrier). Returns its
    result on rank 0, None elsewhere. An exception on rank 0 is raised there before the barrier (the
    launcher then ends the others)."""
    result = work() if comm.rank == 0 else None
    comm.barrier()
    return result


def sharded_scorer(
    score: Callable[[Any, list[str]], Sequence[float]], prompts: Sequence[str], comm: Comm
) -> Callable[[Any], np.ndarray]:
    """``model -> scores of all prompts in input order`` where this process scores only its shard
    (:func:`~reasoningrec.sharding.shard_positions` by prompt length) and the shards are gathered
    (:func:`merge_shards`).
    ``score(model, prompts)`` scores a list of prompts; with one process it sees all of them."""
    prompts = list(prompts)
    mine = shard_positions([len(p) for p in prompts], comm.size, comm.rank)

    def scorer(model) -> np.ndarray:
        values = list(score(model, [prompts[i] for i in mine])) if mine else []
        return merge_shards(len(prompts), comm.gather((mine, [float(v) for v in values])))

    return scorer


def finish(comm: Comm) -> None:
    """Leave the process group (after the last collective), so the processes exit without a warning."""
    if isinstance(comm, TorchComm):
        comm._dist.destroy_process_group()


# --------------------------------------------------------------------------- an experiment under a launcher


class Leader:
    """Rank 0 running an experiment while the other ranks of its launch wait for one order: to train
    with it (``("train", dataset, method, k_shots, seed, out_dir)``) or to leave (``("none",)``).
    The order is sent once, as soon as rank 0 knows it, so no rank waits in a collective while rank 0
    scores, explains and logs alone."""

    def __init__(self, comm: Comm):
        self.comm, self.sent = comm, False

    def order(self, order: tuple) -> None:
        if not self.sent:
            self.sent = True
            self.comm.broadcast(order)


_LEADERS: list[Leader] = []


def leading() -> Leader | None:
    """The :class:`Leader` of the experiment this process runs for a launch, if any."""
    return _LEADERS[-1] if _LEADERS else None


def order_followers(order: tuple) -> None:
    """Send the waiting ranks their order when this process leads a launch (else nothing)."""
    leader = leading()
    if leader is not None:
        leader.order(order)


def run_launched(comm: Comm, lead: Callable[[], T], follow: Callable[[tuple], None]) -> T | None:
    """One rank of a launch of the experiment: rank 0 runs ``lead()`` alone, its training on every
    rank; the others run ``follow(order)`` with the order it sends (:class:`Leader`) and return None.
    Rank 0 releases the others when it ends without training (up to date, zero-shot, an error)."""
    if comm.rank != 0:
        follow(comm.broadcast(None))
        return None
    leader = Leader(comm)
    _LEADERS.append(leader)
    try:
        return lead()
    finally:
        _LEADERS.remove(leader)
        leader.order(("none",))
