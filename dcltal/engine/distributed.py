"""DistributedDataParallel helpers (DESIGN §4): ``torchrun --nproc_per_node=N -m dcltal train ...``.

gloo on CPU, NCCL on GPUs. Training shards the training videos (or windows) with a
DistributedSampler; checkpoints, metrics and validation are rank 0's. Inference shards videos
(:func:`shard_videos`) and gathers the results on rank 0 (:func:`gather_results`). Without torchrun
(WORLD_SIZE unset or 1) every helper is the one-process identity.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence, TypeVar

import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler

from dcltal.engine.device import resolve_device

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
    """Inference: every ``world_size``-th video from this process's rank (no padding, no repeats)."""
    return list(videos)[ctx.rank :: ctx.world_size]


def gather_objects(obj: Any, ctx: DistContext) -> list[Any] | None:
    """Every process's ``obj`` on rank 0 (in rank order), None elsewhere; ``[obj]`` in one process."""
    if not ctx.distributed:
        return [obj]
    out = [None] * ctx.world_size if ctx.is_main else None
    dist.gather_object(obj, out, dst=0)
    return out


def gather_results(results: dict[str, Any], ctx: DistContext) -> dict[str, Any] | None:
    """ActivityNet results JSON objects of the shards -> one on rank 0 (videos in rank order), None
    elsewhere."""
    parts = gather_objects(results, ctx)
    if parts is None:
        return None
    merged = dict(parts[0])
    merged["results"] = {vid: dets for part in parts for vid, dets in part["results"].items()}
    return merged


def broadcast_object(obj: Any, ctx: DistContext) -> Any:
    """Rank 0's ``obj`` on every process."""
    if not ctx.distributed:
        return obj
    box = [obj if ctx.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]
