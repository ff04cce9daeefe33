"""A released model (``dcltal export``): a directory of three files.

- ``model.safetensors``: every tensor the model needs (both streams' weights, or the proposal
  generator's, and the built-in video-level classifier's), named by their place in the checkpoint
  (``streams/rgb/state_dict/heads.cls.weight``); its metadata carries the checkpoint's format and
  version, as JSON the other values of those entries (stream widths, coder statistics), and the
  tensors' checksum (``tensor_sha256``, checked on load as a checkpoint's is);
- ``config.yaml``: the part of the training config that inference reads (a dcltal config);
- ``classes.txt``: the class names, one a line (line number = class index).

:func:`read_model_dir` rebuilds the dict a ``.pt`` checkpoint holds, less the training state, so
every loader of checkpoints takes a directory the same way.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
import yaml

from dcltal.errors import UserError
from dcltal.io import atomic_path, read_text, write_text

WEIGHTS, CONFIG, CLASSES = "model.safetensors", "config.yaml", "classes.txt"
ENTRIES = ("streams", "proposals", "coder", "video_classifier", "stream_weights")  # what a model needs (stream_weights: held_out's choice)
DATA_KEYS = ("streams", "fps", "feature_stride", "feature_window")  # data keys that inference reads
TENSOR = "__tensor__"
CHECKSUM = "tensor_sha256"  # a checkpoint's key (and a model file's metadata key): the checksum of its tensors


def inference_config(config: dict[str, Any]) -> dict[str, Any]:
    """The sections of a stored config that inference reads: data's grid and streams, model, infer
    (and proposals, for the built-in proposal generator)."""
    out = {"data": {k: config["data"][k] for k in DATA_KEYS if k in config.get("data", {})},
           "model": config.get("model", {}), "infer": config.get("infer", {})}
    if out["model"].get("kind") == "proposals":
        out["proposals"] = config.get("proposals", {})
    return out


def _split(obj: Any, name: str, tensors: dict[str, torch.Tensor]) -> Any:
    """``obj`` with each tensor moved into ``tensors`` under its path and a placeholder left behind."""
    if isinstance(obj, torch.Tensor):
        tensors[name] = obj.detach().cpu().contiguous().clone()  # safetensors refuses shared storage
        return {TENSOR: name}
    if isinstance(obj, dict):
        return {str(k): _split(v, f"{name}/{k}", tensors) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_split(v, f"{name}/{i}", tensors) for i, v in enumerate(obj)]
    return obj


def _join(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        return tensors[obj[TENSOR]] if set(obj) == {TENSOR} else {k: _join(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_join(v, tensors) for v in obj]
    return obj


def write_model_dir(ckpt: dict[str, Any], out: str | os.PathLike) -> Path:
    """Write the model of the checkpoint dict ``ckpt`` into the directory ``out``, each file atomically."""
    from safetensors.torch import save_file

    from dcltal.engine.checkpoint import tensor_checksum  # that module reads model directories: imported here

    out = Path(out)
    tensors: dict[str, torch.Tensor] = {}
    entries = {k: ckpt[k] for k in ENTRIES if ckpt.get(k) is not None}
    skeleton = {k: _split(v, k, tensors) for k, v in entries.items()}
    metadata = {"format": ckpt["format"], "format_version": str(ckpt["format_version"]), "entries": json.dumps(skeleton),
                CHECKSUM: tensor_checksum(entries)}
    with atomic_path(out / WEIGHTS) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    write_text(out / CONFIG, yaml.safe_dump(inference_config(ckpt["config"]), sort_keys=False))
    write_text(out / CLASSES, "".join(f"{c}\n" for c in ckpt["classes"]))
    return out


def read_model_dir(d: Path) -> dict[str, Any]:
    """The checkpoint dict of a directory written by :func:`write_model_dir`."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    for name in (WEIGHTS, CONFIG, CLASSES):
        if not (d / name).is_file():
            raise UserError(f"model directory {d} has no {name}; write it with dcltal export CKPT --out {d}")
    try:
        tensors = load_file(d / WEIGHTS)
        with safe_open(d / WEIGHTS, framework="pt") as f:
            metadata = f.metadata() or {}
        skeleton = json.loads(metadata["entries"])
        version = int(metadata["format_version"])
    except (SafetensorError, OSError, KeyError, ValueError):
        raise UserError(f"{d / WEIGHTS} is not a model file written by dcltal export") from None
    try:
        config = yaml.safe_load(read_text(d / CONFIG, "model config"))
    except yaml.YAMLError:
        raise UserError(f"{d / CONFIG} is not valid YAML; write the model again with dcltal export") from None
    if not isinstance(config, dict):
        raise UserError(f"{d / CONFIG}: expected a mapping of sections (data, model, infer)")
    classes = read_text(d / CLASSES, "model classes file").splitlines()
    try:
        entries = {k: _join(v, tensors) for k, v in skeleton.items()}
    except KeyError as e:
        raise UserError(f"{d / WEIGHTS} lacks the tensor {e}; write the model again with dcltal export") from None
    checksum = {CHECKSUM: metadata[CHECKSUM]} if CHECKSUM in metadata else {}  # checked by the loader
    return {"format": metadata.get("format"), "format_version": version, "config": config, "classes": classes, **entries,
            **checksum}
