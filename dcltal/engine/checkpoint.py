"""The checkpoint: one file, written atomically, read with ``weights_only=True``.

Layout (docs/architecture.md; CONTRACT §3)::

    {"format": "dcltal-checkpoint/1", "format_version": 1, "config": cfg.to_dict(), "classes": [names],
     "streams": {stream: {"dim": D, "state_dict": ...}},      # detector (model.kind: detector)
     "proposals": {...},                                      # generator (model.kind: proposals)
     "coder": {"kind", "mean", "std"}, "video_classifier": {stream: state_dict} | None,
     "epoch": n, "best_score": x,                             # epochs done; best validation score so far
     "training": {"optimizers", "scaler", "rng", "best_epoch", ...},  # last.pt only: what --resume needs
     "tensor_sha256": hex}                                    # checksum of every tensor above, checked on load

Everything in it is a tensor or a plain Python value, so the safe ``weights_only`` loader reads it.
A directory written by ``dcltal export`` (:mod:`dcltal.engine.model_dir`) loads as the same dict,
less the training state. Loading upgrades what older releases wrote (:func:`migrate`).
"""
from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Any, Callable

import torch

from dcltal.errors import UserError
from dcltal.engine.model_dir import CHECKSUM, read_model_dir
from dcltal.io import atomic_path, existing_path

FORMAT = "dcltal-checkpoint/1"
FORMAT_VERSION = 1  # of the layout; a checkpoint without the key is version 1
# each upgrades a checkpoint dict of version n + 1 (its index + 1) to the next; a new layout adds one
MIGRATIONS: list[Callable[[dict[str, Any]], dict[str, Any]]] = []
# top-level keys renamed since (old -> new); readers of either layout find the new name. best_map:
# the best validation score, whatever it is (the generator's is its AUC)
KEY_RENAMES: dict[str, str] = {"best_map": "best_score"}
# config keys renamed since (dotted old key -> dotted new key, or None where the key was dropped)
CONFIG_RENAMES: dict[str, str | None] = {}


def tensor_checksum(obj: Any) -> str:
    """sha256 over every tensor in ``obj`` (nested dicts, lists), each with its place, dtype and shape,
    dict keys in sorted order: the same for a checkpoint saved and loaded back, whatever its dicts' order."""
    digest = hashlib.sha256()

    def visit(x: Any, place: str) -> None:
        if isinstance(x, torch.Tensor):
            digest.update(f"{place}|{x.dtype}|{tuple(x.shape)}|".encode())
            digest.update(x.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        elif isinstance(x, dict):
            for k in sorted(x, key=str):
                visit(x[k], f"{place}/{k}")
        elif isinstance(x, (list, tuple)):
            for i, v in enumerate(x):
                visit(v, f"{place}/{i}")

    visit(obj, "")
    return digest.hexdigest()


def verify_checksum(ckpt: dict[str, Any], source: Path) -> None:
    """A UserError where ``ckpt``'s tensors differ from the checksum stored in it (a bit flipped on
    disk or in a copy); checkpoints of releases before the checksum pass unchecked."""
    stored = ckpt.pop(CHECKSUM, None)
    if stored is not None and stored != tensor_checksum(ckpt):
        raise UserError(f"checkpoint {source} is damaged: its tensors do not match the checksum stored in it "
                        "(changed on disk or in a copy); use another copy or train again")


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` (``format`` and the tensors' checksum added) to ``path`` atomically: a kill or a
    full disk mid-write leaves the old file. Serialised in memory first, so that a full disk is an
    OSError naming ``path`` (torch's own writer reports it as a RuntimeError)."""
    ckpt = {"format": FORMAT, "format_version": FORMAT_VERSION, **state}
    ckpt[CHECKSUM] = tensor_checksum(ckpt)
    buffer = io.BytesIO()
    torch.save(ckpt, buffer)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(buffer.getbuffer())
    return Path(path)


def _rename_config_keys(config: dict[str, Any]) -> dict[str, Any]:
    for old, new in CONFIG_RENAMES.items():
        *parents, leaf = old.split(".")
        section = config
        for part in parents:
            section = section.get(part) if isinstance(section, dict) else None
        if not isinstance(section, dict) or leaf not in section:
            continue
        value = section.pop(leaf)
        if new is not None:
            *parents, leaf = new.split(".")
            section = config
            for part in parents:
                section = section.setdefault(part, {})
            section[leaf] = value
    return config


def migrate(ckpt: dict[str, Any], source: Path) -> dict[str, Any]:
    """``ckpt`` upgraded to this release's layout and config keys."""
    version = ckpt.get("format_version", 1)
    if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
        raise UserError(f"checkpoint {source} has format version {version}; this dcltal reads versions 1 to "
                        f"{FORMAT_VERSION} (a newer dcltal wrote it: upgrade dcltal)")
    for upgrade in MIGRATIONS[version - 1:]:
        ckpt = upgrade(ckpt)
    for old, new in KEY_RENAMES.items():
        if old in ckpt:
            ckpt[new] = ckpt.pop(old)
    ckpt["config"] = _rename_config_keys(ckpt["config"])
    ckpt["format_version"] = FORMAT_VERSION
    return ckpt


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint dict of a file written by ``dcltal train`` or a directory by ``dcltal export``."""
    p = existing_path(path, "checkpoint")
    if p.is_dir():
        ckpt = read_model_dir(p)
    else:
        try:
            ckpt = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as e:  # torch raises many kinds for a bad file; all mean the same to the user
            raise UserError(f"checkpoint {p} could not be read ({type(e).__name__}); expected a file written by dcltal train") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise UserError(f"checkpoint {p} is not a {FORMAT} file written by dcltal train")
    verify_checksum(ckpt, p)
    return migrate(ckpt, p)


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
