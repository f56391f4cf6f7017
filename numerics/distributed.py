"""The torch.distributed path of the streaming Gram: shard Grams add up.

For any partition of the P coordinates into shards b (DDP ranks holding different parameters, FSDP flat-parameter
shards, tensor-parallel slices), G = X Xᵀ = Σ_b X_b X_bᵀ (theory reference §1.2 computation notes, §6.1 "shard sum").
So each rank keeps the ring buffer of *its own* columns, computes the W+1 new dot products per group on its shard,
and one all-reduce (sum) of the (n_groups × (W+1)) float64 dots gives every rank the global Gram: ~W² numbers
on the wire per push, never a P-sized tensor.

Contract for `RollingGram(..., process_group=pg)`:
- every rank constructs it with the same window W and the same group names and atom count (checked once, at
  construction, by `check_same_across_ranks`); the atom *sizes* may differ (uneven shards are fine);
- every rank calls `push` the same number of times in the same order (each push is a collective);
- the dots live on the buffer's device, so the backend must support that device (gloo: CPU; NCCL: CUDA);
- a non-finite δ on any rank makes the reduced dots non-finite on *every* rank, so all ranks raise
  `NonFiniteUpdateError` together and roll back together: no rank can drift out of step.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from numerics.errors import ShapeMismatchError

__all__ = ["all_reduce_max", "all_reduce_sum", "check_same_across_ranks", "shard_bounds"]


def all_reduce_sum(t: Tensor, group: object | None) -> Tensor:
    """In-place sum of `t` over the ranks of `group` (returns `t`); a no-op when `group` is None."""
    if group is None:
        return t
    import torch.distributed as dist  # local: only multi-process runs need the distributed backend

    dist.all_reduce(t, op=dist.ReduceOp.SUM, group=group)
    return t


def check_same_across_ranks(values: dict[str, int], group: object | None, device: torch.device) -> None:
    """Raise `ShapeMismatchError` on every rank unless each named integer is equal on all ranks of `group`.

    One all-reduce (max) of [v, −v]: the maximum of −v is −min v, so min = max ⇔ all equal.
    """
    if group is None:
        return
    names = list(values)
    v = torch.tensor([values[n] for n in names], dtype=torch.float64, device=device)
    both = all_reduce_max(torch.cat([v, -v]), group)
    hi, lo = both[: len(names)], -both[len(names):]
    bad = [f"{n}: min {int(a)} vs max {int(b)}" for n, a, b in zip(names, lo.tolist(), hi.tolist(), strict=True)
           if a != b]
    if bad:
        raise ShapeMismatchError(f"ranks disagree on the rolling-Gram configuration: {'; '.join(bad)}")


def all_reduce_max(t: Tensor, group: object | None) -> Tensor:
    """In-place elementwise maximum of `t` over the ranks of `group`."""
    if group is None:
        return t
    import torch.distributed as dist  # local: only multi-process runs need the distributed backend

    dist.all_reduce(t, op=dist.ReduceOp.MAX, group=group)
    return t


def shard_bounds(sizes: Sequence[int], rank: int, world_size: int) -> list[tuple[int, int]]:
    """Per atom, the column range [lo, hi) of rank `rank` in an even split over `world_size` ranks.

    A convenience for sharding flat vectors by hand (tests, benchmarks); the first `n % world_size` ranks get one
    extra column.
    """
    bounds = []
    for n in sizes:
        base, extra = divmod(n, world_size)
        lo = rank * base + min(rank, extra)
        bounds.append((lo, lo + base + (1 if rank < extra else 0)))
    return bounds
