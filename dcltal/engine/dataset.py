"""The videos of one subset, in memory: grid, duration, per-stream features, proposals, ground truth.

A :class:`VideoRecord` has what inference reads (``engine.inference.InferenceVideo``) and what
training labels (ground truth). Features are read once through the FeatureStore; with
``data.feature_cache`` they are kept as float16 (half the memory; DESIGN §4) and widened per batch.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
from tqdm import tqdm

from dcltal.data.grid import TimeGrid
from dcltal.errors import RepairLog, UserError

log = logging.getLogger(__name__)

@dataclass
class VideoRecord:
    id: str
    grid: TimeGrid
    duration: float  # seconds
    features: dict[str, np.ndarray]  # stream -> [T, D] float32 (float16 with data.feature_cache)
    proposals: np.ndarray  # [N, 3] (start s, end s, score)
    segments: np.ndarray  # [M, 2] ground truth, seconds
    labels: np.ndarray  # [M] class index 0..C-1

    @property
    def num_snippets(self) -> int:
        return len(next(iter(self.features.values())))


def read_avoid_list(path: str | None) -> set[str]:
    """Video ids of ``data.avoid_videos``: the first word of each non-empty line."""
    if path is None:
        return set()
    p = Path(path)
    if not p.is_file():
        raise UserError(f"data.avoid_videos file not found: {p} (check the path)")
    return {line.split()[0] for line in p.read_text().splitlines() if line.strip()}


class VideoDataset:
    def __init__(self, videos: list[VideoRecord], classes: list[str]):
        self.videos, self.classes = videos, classes

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, i: int) -> VideoRecord:
        return self.videos[i]

    def __iter__(self) -> Iterator[VideoRecord]:
        return iter(self.videos)

    def subset(self, indices) -> "VideoDataset":
        return VideoDataset([self.videos[i] for i in indices], self.classes)

    @property
    def streams(self) -> list[str]:
        return list(self.videos[0].features) if self.videos else []

    @classmethod
    def from_config(cls, cfg, subset: str | None, progress: bool = False) -> "VideoDataset":
        """The videos of ``subset`` (default ``data.train_subset``) of ``data.annotations``, less
        ``data.avoid_videos``, with features and proposals."""
        from dcltal.data.annotations import load_annotations
        from dcltal.data.features import FeatureStore
        from dcltal.data.proposals import load_proposals

        data = cfg.data
        for key in ("annotations", "features", "proposals"):
            if getattr(data, key) is None:
                raise UserError(f"config key data.{key} is not set; training needs annotations, features and proposals")
        annotations = load_annotations(data.annotations, data.classes)
        avoid = read_avoid_list(data.avoid_videos)
        chosen = [v for v in annotations.in_subset(subset or data.train_subset) if v.id not in avoid]
        repairs = RepairLog()
        store = FeatureStore.from_config(data, repairs=repairs)
        missing = [v.id for v in chosen if v.id not in store]
        if missing:
            raise UserError(f"no features in {data.features} for {len(missing)} video(s) of subset "
                            f"{subset or data.train_subset} (e.g. {missing[0]}); check data.features")
        grids = {v.id: TimeGrid(v.fps or data.fps, data.feature_stride, data.feature_window) for v in chosen}
        feats, durations = {}, {}
        dtype = np.float16 if data.feature_cache else np.float32
        for v in tqdm(chosen, desc="features", unit="video", disable=not progress, leave=False):
            loaded = store.load(v.id)
            feats[v.id] = {s: f.astype(dtype, copy=False) for s, f in loaded.items()}
            durations[v.id] = v.duration if v.duration is not None else grids[v.id].duration(len(next(iter(loaded.values()))))
        repairs.report(str(data.features))
        proposals = load_proposals(data.proposals, {v.id: v for v in chosen}, data.fps)
        records = [VideoRecord(v.id, grids[v.id], float(durations[v.id]), feats[v.id], proposals[v.id],
                               np.asarray(v.segments, np.float64).reshape(-1, 2), np.asarray(v.labels, np.int64))
                   for v in chosen]
        _log_counts(annotations, subset or data.train_subset, records, len(avoid))
        return cls(records, list(annotations.classes))


def _log_counts(annotations, subset: str, records: list[VideoRecord], avoided: int) -> None:
    """The data counts of a run's log (docs/training.md, "Run records")."""
    per_subset: dict[str, list[int]] = {}
    for v in annotations.videos.values():
        count = per_subset.setdefault(v.subset, [0, 0])
        count[0] += 1
        count[1] += len(v.labels)
    log.info("annotations: %s", ", ".join(f"{name} {n} videos / {m} instances" for name, (n, m) in per_subset.items()))
    log.info("subset %s: %d videos (%d ids in data.avoid_videos), %d instances, %d proposals", subset, len(records),
             avoided, sum(len(r.labels) for r in records), sum(len(r.proposals) for r in records))
