"""Splitting a list of work items between processes so that each gets a fair share of the work."""

from __future__ import annotations

from collections.abc import Sequence


def shard_positions(lengths: Sequence[int], size: int, rank: int) -> list[int]:
    """The positions (into ``lengths``) that process ``rank`` of ``size`` handles, ascending.

    Longest first, dealt round-robin: every shard gets every size class, so the shards' total
    lengths differ by at most one item's. Together the shards hold each position exactly once.
    """
    if not 0 <= rank < size:
        raise ValueError(f"rank {rank} is not within {size} processes")
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return sorted(order[rank::size])
