"""Tiny synthetic training data and configs shared by the training tests."""
from __future__ import annotations

from pathlib import Path

import yaml

from dcltal.data.synth import write_synthetic

DIM = 8


def tiny_benchmark(root: Path, videos_train: int = 6, videos_test: int = 2, classes: int = 3) -> Path:
    synth = root / "synth"
    write_synthetic(synth, seed=0, videos_train=videos_train, videos_test=videos_test, classes=classes, dim=DIM,
                    progress=False)
    return synth


def tiny_config(root: Path, synth: Path, **train) -> Path:
    """A config for ``synth`` with a very small model; ``train`` overrides train.* keys."""
    cfg = {
        "data": {"annotations": str(synth / "annotations.json"), "features": str(synth / "features"),
                 "proposals": str(synth / "proposals"), "classes": str(synth / "classes.txt"),
                 "streams": {"rgb": [0, DIM], "flow": [DIM, 2 * DIM]}},
        "model": {"hidden_dim": 4, "cls_hidden": 16, "loc_hidden": 16},
        "train": {"epochs": 2, "device": "cpu", "videos_per_batch": 2, "samples_per_video": [1, 6, 1],
                  "sample_scale": 1, "val_fraction": 0.34, **train},
        "infer": {"video_scores": None},
    }
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path
