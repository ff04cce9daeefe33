"""DistributedDataParallel helpers (DESIGN §4): ``torchrun --nproc_per_node=N -m dcltal train ...``.

gloo on CPU, NCCL on GPUs. Training shards the training videos (or windows) with a
DistributedSampler; checkpoints, metrics and validation are rank 0's. Inference and proposals shard
the videos (:func:`shard_videos`), gather them on rank 0 (:func:`gather_videos`), which writes the
one output; :func:`run_agreed` makes one process's mistake stop all with one error line. Without
torchrun (WORLD_SIZE unset or 1) every helper is the one-process identity.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence, TypeVar

import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler

from dcltal.engine.device import resolve_device
from dcltal.errors import UserError, print_error, user_message

T = TypeVar("T")


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device_name: str = "auto") -> DistContext:
    """The process group torchrun describes in the environment (RANK, WORLD_SIZE, LOCAL_RANK,
    MASTER_ADDR, MASTER_PORT), or a one-process context."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name, local_rank if world > 1 else None)
    if world <= 1:
        return DistContext(0, 1, device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistContext(dist.get_rank(), dist.get_world_size(), device)


def shutdown(ctx: DistContext, finished: bool = True) -> None:
    """Leave the process group; where the work ``finished``, after a barrier: a process that leaves
    straight after a collective it has done its part of (rank 0's send of a broadcast) can abort in
    gloo's teardown while the others still receive ("terminate called without an active exception",
    1 run in 10 here). After an error no barrier, which the other processes might never reach."""
    if ctx.distributed and dist.is_initialized():
        if finished:
            dist.barrier()
        dist.destroy_process_group()


@contextmanager
def process_group(device_name: str = "auto") -> Iterator[DistContext]:
    """``init_distributed`` for the length of a command's work, then :func:`shutdown` (with its
    barrier only where the body finished without an error)."""
    ctx = init_distributed(device_name)
    finished = False
    try:
        yield ctx
        finished = True
    finally:
        shutdown(ctx, finished)


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()


def shard_indices(count: int, ctx: DistContext, epoch: int, seed: int) -> torch.Tensor | None:
    """This process's share of ``count`` items for ``epoch`` (a DistributedSampler: shuffled by
    (seed, epoch), padded by repeats so that every process gets as many); None in one process."""
    if not ctx.distributed:
        return None
    sampler = DistributedSampler(range(count), num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=seed)
    sampler.set_epoch(epoch)
    return torch.tensor(list(sampler), dtype=torch.long)


def shard_videos(videos: Sequence[T], ctx: DistContext) -> list[T]:
    """Inference: this process's contiguous block of ``videos`` (blocks in rank order make the whole
    list again; their sizes differ by at most one)."""
    lo, hi = (len(videos) * r // ctx.world_size for r in (ctx.rank, ctx.rank + 1))
    return list(videos[lo:hi])


def gather_objects(obj: Any, ctx: DistContext) -> list[Any] | None:
    """Every process's ``obj`` on rank 0 (in rank order), None elsewhere; ``[obj]`` in one process."""
    if not ctx.distributed:
        return [obj]
    out = [None] * ctx.world_size if ctx.is_main else None
    dist.gather_object(obj, out, dst=0)
    return out


def gather_videos(per_video: dict[str, Any], ctx: DistContext) -> dict[str, Any] | None:
    """The processes' ``{video: result}`` merged on rank 0 in rank order (with :func:`shard_videos`'
    blocks, the order of the whole list), None elsewhere."""
    parts = gather_objects(per_video, ctx)
    return None if parts is None else {vid: r for part in parts for vid, r in part.items()}


def run_agreed(work: Callable[[], T], ctx: DistContext) -> T:
    """``work()`` in every process, where a user's mistake in one stops all without a hang: the
    processes learn through an all_reduce whether any of them raised one (a UserError, or an OSError
    on a path), rank 0 prints the first such process's message as the one error line, and every
    process leaves the group and exits with code 2. In one process, ``work()`` as it is."""
    if not ctx.distributed:
        return work()
    result, message = None, None
    try:
        result = work()
    except (UserError, OSError) as e:
        message = user_message(e)
        if message is None:
            raise
    first = torch.tensor([ctx.world_size if message is None else ctx.rank], device=_collective_device(ctx))
    dist.all_reduce(first, op=dist.ReduceOp.MIN)
    failed = int(first)
    if failed == ctx.world_size:
        return result
    box = [message]
    dist.broadcast_object_list(box, src=failed)
    if ctx.is_main:
        print_error(box[0])
    shutdown(ctx)  # every process is here: the barrier lets rank 0's line out before any process exits
    raise SystemExit(2)


def _collective_device(ctx: DistContext) -> torch.device:
    return ctx.device if dist.get_backend() == "nccl" else torch.device("cpu")


def broadcast_object(obj: Any, ctx: DistContext) -> Any:
    """Rank 0's ``obj`` on every process."""
    if not ctx.distributed:
        return obj
    box = [obj if ctx.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]
