"""The device a run uses (``train.device``: auto | cpu | cuda) and mixed precision on CUDA."""
from __future__ import annotations

import contextlib

import torch

from dcltal.errors import UserError


def resolve_device(name: str = "auto", local_rank: int | None = None) -> torch.device:
    """``auto``: CUDA where present, else CPU. Under torchrun each process takes the GPU of its
    local rank."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise UserError("train.device is cuda, but torch sees no CUDA device; use auto or cpu")
        return torch.device("cuda", local_rank or 0)
    return torch.device(name)


def set_cpu_threads(count: int) -> None:
    """``train.threads``: torch's CPU thread count where positive; torch's default where 0."""
    if count > 0 and torch.get_num_threads() != count:
        torch.set_num_threads(count)


def autocast(device: torch.device, enabled: bool = True):
    """float16 autocast on CUDA where ``enabled`` (``train.amp``); a no-op context on CPU, which keeps
    CPU runs exactly reproducible."""
    if device.type == "cuda" and enabled:
        return torch.autocast("cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def grad_scaler(device: torch.device, enabled: bool = True) -> torch.amp.GradScaler:
    """Loss scaling for float16 gradients on CUDA; disabled (a pass-through) elsewhere."""
    return torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and enabled)
