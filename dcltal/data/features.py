"""Snippet features, one array per video (CONTRACT §1).

Two layouts:

- one directory of ``<video_id>.npy``, float32 or float16, shape ``[T, C]``; each stream is a
  column range of it (``streams: {rgb: [0, 1024], flow: [1024, 2048]}``);
- one directory per stream (``{rgb: DIR, flow: DIR}``) as the P-GCN/ContextLoc I3D release ships
  them: a file per video named ``<video_id>``, ``<video_id>.npy`` or ``<video_id>.pt`` (a tensor
  saved by torch, loaded with ``weights_only=True``); each must be ``[T, hi - lo]`` for its stream.

Streams of one video that differ in length by one or two snippets (the two I3D streams are
extracted separately, and their last windows are rounded differently) are cut to the shorter with
a counted warning; a larger difference is a UserError, as are a missing file, a wrong width and
NaN/Inf values.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from dcltal.errors import RepairLog, UserError

MAX_STREAM_SLACK = 2  # snippets by which two streams of a video may differ before it is an error
NOT_FEATURES = (".txt", ".json", ".csv", ".md", ".yaml", ".yml")
NPY_MAGIC = b"\x93NUMPY"


def _load_torch(path: Path) -> np.ndarray:
    import torch  # only here: commands that read .npy features need no torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many kinds for a bad file; all mean the same to the user
        raise UserError(f"feature file {path} could not be read by torch.load ({type(e).__name__}); "
                        "expected a tensor saved with torch.save") from None
    if not isinstance(obj, torch.Tensor):
        raise UserError(f"feature file {path} holds a {type(obj).__name__}, expected one [T, D] tensor")
    return obj.detach().float().numpy()


def _load_array(path: Path) -> np.ndarray:
    """A feature file -> array: ``.npy`` (or an extension-less file with the npy magic) by numpy, else torch."""
    if not path.is_file():
        raise UserError(f"feature file not found: {path} (check data.features)")
    with open(path, "rb") as f:
        is_npy = f.read(len(NPY_MAGIC)) == NPY_MAGIC
    if not is_npy:
        if path.suffix == ".npy":
            raise UserError(f"feature file {path} is not a valid .npy file; re-export it with numpy.save")
        return _load_torch(path)
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError):
        raise UserError(f"feature file {path} is not a valid .npy file; re-export it with numpy.save") from None


def _check(arr: np.ndarray, path: Path, width: int) -> None:
    """``arr`` must be a non-empty ``[T, C]`` of finite values with at least ``width`` columns."""
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise UserError(f"feature file {path} has shape {list(arr.shape)}, expected [T, C] with T > 0")
    if arr.shape[1] < width:
        raise UserError(f"feature file {path} has {arr.shape[1]} columns, but the streams need {width}; "
                        "check data.streams")
    if not np.isfinite(arr).all():
        raise UserError(f"feature file {path} holds NaN or infinite values; re-extract the features")


class FeatureStore:
    """Per-stream ``[T, D]`` float32 features of each video.

    ``spec``: one directory (streams are column ranges of each array) or ``{stream: directory}``.
    ``streams``: ``{stream: [lo, hi)}`` column ranges; in the per-stream layout they give each
    stream's width ``hi - lo``. ``cache=True`` keeps every loaded video in memory as float16
    (half the memory of float32; DESIGN §4: features cached in memory), so later loads read no
    file. ``repairs`` collects the counted warnings; without one each repair is reported at once.
    """

    def __init__(self, spec: str | os.PathLike | dict[str, str], streams: dict[str, list[int]],
                 cache: bool = False, repairs: RepairLog | None = None) -> None:
        self.streams = {name: (int(lo), int(hi)) for name, (lo, hi) in streams.items()}
        for name, (lo, hi) in self.streams.items():
            if not 0 <= lo < hi:
                raise UserError(f"data.streams.{name}: column range [{lo}, {hi}] is empty or negative; "
                                "give [first, end) with first < end")
        if isinstance(spec, dict):
            unknown = sorted(set(spec) ^ set(self.streams))
            if unknown:
                raise UserError(f"data.features and data.streams name different streams ({', '.join(unknown)}); "
                                "give one directory per stream of data.streams")
            self.dirs = {name: Path(spec[name]) for name in self.streams}
        else:
            self.dirs = {name: Path(spec) for name in self.streams}
        self.per_stream = isinstance(spec, dict)
        for name, d in self.dirs.items():
            if not d.is_dir():
                raise UserError(f"features directory not found: {d} (check data.features)")
        self.cache: dict[str, dict[str, np.ndarray]] | None = {} if cache else None
        self.repairs = repairs
        self._cut: set[str] = set()  # videos whose streams were cut, counted once each
        self._files: dict[str, dict[str, Path]] | None = None

    def _index(self) -> dict[str, dict[str, Path]]:
        """stream -> video id -> file, from one listing of each directory."""
        if self._files is None:
            self._files = {}
            for name, d in self.dirs.items():
                files: dict[str, Path] = {}
                for f in sorted(d.iterdir()):
                    if f.name.startswith(".") or not f.is_file() or f.suffix.lower() in NOT_FEATURES:
                        continue
                    if not self.per_stream and f.suffix != ".npy":
                        continue
                    files.setdefault(f.stem if f.suffix in (".npy", ".pt") else f.name, f)
                self._files[name] = files
        return self._files

    def video_ids(self) -> list[str]:
        """Sorted ids of the videos that have a file for every stream."""
        sets = [set(files) for files in self._index().values()]
        return sorted(set.intersection(*sets)) if sets else []

    def _path(self, stream: str, video_id: str) -> Path:
        d = self.dirs[stream]
        if not self.per_stream:
            return d / f"{video_id}.npy"
        found = self._index()[stream].get(video_id)
        if found is None:
            raise UserError(f"no feature file for video {video_id} in {d} "
                            f"(looked for {video_id}, {video_id}.npy, {video_id}.pt)")
        return found

    def _read(self, video_id: str) -> dict[str, np.ndarray]:
        """stream -> [T_s, D_s] float32 as stored, lengths not yet reconciled."""
        if not self.per_stream:
            path = self._path(next(iter(self.streams)), video_id)
            arr = _load_array(path)
            _check(arr, path, max(hi for _, hi in self.streams.values()))
            return {name: np.ascontiguousarray(arr[:, lo:hi], dtype=np.float32)
                    for name, (lo, hi) in self.streams.items()}
        out = {}
        for name, (lo, hi) in self.streams.items():
            path = self._path(name, video_id)
            arr = _load_array(path)
            _check(arr, path, hi - lo)
            if arr.shape[1] != hi - lo:
                raise UserError(f"feature file {path} has {arr.shape[1]} columns, but data.streams.{name} "
                                f"says {hi - lo}; fix data.streams")
            out[name] = np.asarray(arr, dtype=np.float32)
        return out

    def _cut_to_shortest(self, video_id: str, feats: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        lengths = {name: len(f) for name, f in feats.items()}
        t, longest = min(lengths.values()), max(lengths.values())
        if longest == t:
            return feats
        if longest - t > MAX_STREAM_SLACK:
            raise UserError(f"video {video_id}: streams differ in length by {longest - t} snippets {lengths} "
                            f"(at most {MAX_STREAM_SLACK} are cut); re-extract the shorter stream")
        if video_id not in self._cut:  # a video read again (inference reads some twice) counts once
            self._cut.add(video_id)
            log = self.repairs if self.repairs is not None else RepairLog()
            log.add("streams of one video differing by one or two snippets (cut to the shorter)",
                    f"{video_id}: {lengths}")
            if self.repairs is None:
                log.report("features")
        return {name: f[:t] for name, f in feats.items()}

    def load(self, video_id: str) -> dict[str, np.ndarray]:
        """stream -> ``[T, D]`` float32, every stream cut to the same ``T``."""
        if self.cache is None:
            return self._cut_to_shortest(video_id, self._read(video_id))
        if video_id not in self.cache:
            feats = self._cut_to_shortest(video_id, self._read(video_id))
            if any(np.abs(f).max() > np.finfo(np.float16).max for f in feats.values()):
                raise UserError(f"features of video {video_id} exceed the float16 range (65504); "
                                "turn the feature cache off or rescale the features")
            self.cache[video_id] = {name: f.astype(np.float16) for name, f in feats.items()}
        # the first load returns the same float16-rounded values as every later one
        return {name: f.astype(np.float32) for name, f in self.cache[video_id].items()}
