"""The videos of a subset, as every consumer reads them (training, validation, inference, the
proposal generator, the video-level classifier, visualize): one :class:`VideoRecord` a video and one
loader, :func:`load_videos`, so that ``data.avoid_videos``, ``data.feature_cache``, the streams' cut
to the shorter and the time grid behave the same everywhere.

Features are read through the FeatureStore: at once and held (``in_memory``, as training reads every
video each epoch), or when used with the last few kept (a test set never sits in memory whole).
With ``data.feature_cache`` what is held is float16 (half the memory; DESIGN §4), widened where used.
"""
from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from dcltal.data.grid import TimeGrid
from dcltal.errors import RepairLog, UserError
from dcltal.io import read_video_list

log = logging.getLogger(__name__)


@dataclass
class VideoRecord:
    id: str
    grid: TimeGrid
    duration: float | None  # seconds (the loader always knows it; None: from the feature length)
    features: Mapping[str, np.ndarray]  # stream -> [T, D] (float16 with data.feature_cache in memory)
    proposals: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))  # [N, 2|3] (start s, end s[, score])
    segments: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))  # [M, 2] ground truth, seconds
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # [M] class index 0..C-1

    @property
    def num_snippets(self) -> int:
        return len(next(iter(self.features.values())))

    def side_by_side(self, streams: list[str] | None = None) -> np.ndarray:
        """[T, C] float32: the streams' features side by side, in the order of ``streams`` (default:
        the record's), as the proposal generator reads two-stream features together."""
        return np.concatenate([np.asarray(self.features[s], np.float32) for s in streams or list(self.features)], axis=1)


class StoredFeatures(Mapping):
    """A video's features, read from the store when used (``load`` keeps the last few)."""

    def __init__(self, video_id: str, load: Callable[[str], dict[str, np.ndarray]]):
        self.video_id, self._load = video_id, load

    def __getitem__(self, stream: str) -> np.ndarray:
        return self._load(self.video_id)[stream]

    def __iter__(self) -> Iterator[str]:
        return iter(self._load(self.video_id))

    def __len__(self) -> int:
        return len(self._load(self.video_id))


def read_avoid_list(path: str | None) -> set[str]:
    """Video ids of ``data.avoid_videos`` (none where it is not set)."""
    return read_video_list(path, "data.avoid_videos file") if path is not None else set()


def split_videos(count: int, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """(train, validation) indices: ``round(val_fraction * count)`` videos held out, chosen by ``seed``;
    none where there is a single video."""
    order = np.random.default_rng(seed).permutation(count)
    n_val = int(round(val_fraction * count)) if count > 1 else 0
    n_val = min(n_val, count - 1)
    return sorted(order[n_val:].tolist()), sorted(order[:n_val].tolist())


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
        """The training videos: those of ``subset`` (default ``data.train_subset``), in memory."""
        for key in ("annotations", "features", "proposals"):
            if getattr(cfg.data, key) is None:
                raise UserError(f"config key data.{key} is not set; training needs annotations, features and proposals")
        return load_videos(cfg.data, subset or cfg.data.train_subset, in_memory=True, progress=progress)


def load_videos(data, subset: str | None, *, proposals: bool = True, avoid: bool = True, in_memory: bool = False,
                classes: list[str] | None = None, repairs: RepairLog | None = None,
                shard: Callable[[list[str]], list[str]] | None = None, progress: bool = False) -> VideoDataset:
    """The videos of ``subset`` (default ``data.test_subset``) of ``data.annotations``, or, with
    ``data.annotations`` null, every video in ``data.features`` (durations from the feature length,
    CONTRACT §3). ``avoid``: less ``data.avoid_videos`` (training and evaluation leave them out; the
    files dcltal infer and propose write cover every video). ``proposals``: with ``data.proposals``
    read. With ``classes``, the annotations must name the same classes. Of those, ``shard(ids)`` where
    given (a process's share under torchrun). The features' repairs (streams cut to the shorter) are
    counted in ``repairs`` where given, else reported."""
    from dcltal.data.annotations import load_annotations
    from dcltal.data.features import FeatureStore
    from dcltal.data.proposals import load_proposals

    if data.features is None:
        raise UserError("config key data.features is not set; point it at the feature directory")
    if proposals and data.proposals is None:
        raise UserError("config key data.proposals is not set; inference needs proposals "
                        "(BSN CSV directory, ActivityNet proposal JSON or SSN list; or run dcltal propose)")
    own_repairs = repairs is None and in_memory
    repairs = RepairLog() if own_repairs else repairs
    avoided = read_avoid_list(data.avoid_videos) if avoid else set()
    annotations = load_annotations(data.annotations, data.classes) if data.annotations is not None else None
    # in memory: read once and held (float16 with feature_cache); else the store's own cache, the last 16 kept.
    # With annotations, each video's features are checked to cover its annotated duration.
    store = FeatureStore.from_config(data, cache=data.feature_cache and not in_memory, repairs=repairs,
                                     videos=annotations.videos if annotations is not None else None)
    if annotations is not None:
        if classes is not None and list(annotations.classes) != list(classes):
            raise UserError(f"the classes of {data.annotations} differ from the checkpoint's "
                            f"({len(annotations.classes)} vs {len(classes)}); use the annotations it was trained on")
        subset = subset or data.test_subset
        chosen = [v for v in annotations.in_subset(subset) if v.id not in avoided]
        missing = [v.id for v in chosen if v.id not in store]
        if missing:
            raise UserError(f"no features in {data.features} for {len(missing)} video(s) of subset "
                            f"{subset} (e.g. {missing[0]}); check data.features")
        known = {v.id: (v.fps, v.duration, v.segments, v.labels) for v in chosen}
    else:
        if subset is not None:
            raise UserError(f"subset {subset!r} asked for, but data.annotations is null (every video of "
                            f"{data.features} is run); drop --subset, or set data.annotations")
        known = {vid: (None, None, (), ()) for vid in store.video_ids() if vid not in avoided}
        if not known:
            raise UserError(f"no feature files in {data.features} (check data.features)")
    ids = list(known) if shard is None else shard(list(known))
    if in_memory:
        dtype = np.float16 if data.feature_cache else np.float32
        features = {vid: {s: f.astype(dtype, copy=False) for s, f in store.load(vid).items()}
                    for vid in tqdm(ids, desc="features", unit="video", disable=not progress, leave=False)}
    else:
        load = functools.lru_cache(maxsize=16)(store.load)
        features = {vid: StoredFeatures(vid, load) for vid in ids}
    if own_repairs:
        repairs.report(str(data.features))
    grids = {vid: TimeGrid(known[vid][0] or data.fps, data.feature_stride, data.feature_window) for vid in ids}
    durations = {vid: float(known[vid][1]) if known[vid][1] is not None
                 else grids[vid].duration(len(next(iter(features[vid].values())))) for vid in ids}
    found = {}
    if proposals:
        found = load_proposals(data.proposals, {vid: _Timing(durations[vid], grids[vid].fps) for vid in ids}, data.fps)
    records = [VideoRecord(vid, grids[vid], durations[vid], features[vid], found.get(vid, np.zeros((0, 3))),
                           np.asarray(known[vid][2], np.float64).reshape(-1, 2), np.asarray(known[vid][3], np.int64))
               for vid in ids]
    if annotations is not None:
        _log_counts(annotations, subset, records, len(avoided))
    return VideoDataset(records, list(annotations.classes) if annotations is not None else list(classes or []))


@dataclass
class _Timing:  # what load_proposals reads of a video
    duration: float
    fps: float


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
