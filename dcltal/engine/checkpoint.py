"""The checkpoint: one file, written atomically, read with ``weights_only=True``.

Layout (docs/architecture.md; CONTRACT §3)::

    {"format": "dcltal-checkpoint/1", "config": cfg.to_dict(), "classes": [names],
     "streams": {stream: {"dim": D, "state_dict": ...}},      # detector (model.kind: detector)
     "proposals": {...},                                      # generator (model.kind: proposals)
     "coder": {"kind", "mean", "std"}, "video_classifier": {stream: state_dict} | None,
     "epoch": n, "best_map": x,                               # epochs done; best validation score so far
     "training": {"optimizers", "scaler", "rng", "best_epoch", ...}}   # last.pt only: what --resume needs

Everything in it is a tensor or a plain Python value, so the safe ``weights_only`` loader reads it.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from dcltal.errors import UserError
from dcltal.io import atomic_path, existing_path

FORMAT = "dcltal-checkpoint/1"


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` (``format`` added) to ``path`` atomically: a kill mid-write leaves the old file."""
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, **state}, tmp)
    return Path(path)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    p = existing_path(path, "checkpoint")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many kinds for a bad file; all mean the same to the user
        raise UserError(f"checkpoint {p} could not be read ({type(e).__name__}); expected a file written by dcltal train") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise UserError(f"checkpoint {p} is not a {FORMAT} file written by dcltal train")
    return ckpt


def cpu_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A module's state dict as CPU tensors, unwrapped from DistributedDataParallel."""
    module = getattr(module, "module", module)
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
