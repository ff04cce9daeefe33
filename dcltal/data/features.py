"""Snippet features, one array per video (CONTRACT §1).

Two layouts:

- one directory of a file per video (or one HDF5 file of a dataset per video), float32 or float16,
  shape ``[T, C]``; each stream is a column range of it (``streams: {rgb: [0, 1024], flow: [1024, 2048]}``);
- one directory (or HDF5 file) per stream (``{rgb: DIR, flow: DIR}``) as the P-GCN/ContextLoc I3D
  release ships them; each array must be ``[T, hi - lo]`` for its stream, and there a file may also be
  named ``<video_id>`` with no extension.

Files are read as their extension says (:mod:`dcltal.data.feature_files`). ``prefix`` and ``suffix``
frame the video id in a file's name (before the extension), and ``v_<id>`` matches the id ``<id>``
and the reverse (ActivityNet's files are named ``v_<id>``, its annotations ``<id>``).

Streams of one video that differ in length by one or two snippets (the two I3D streams are
extracted separately, and their last windows are rounded differently) are cut to the shorter with
a counted warning; a larger difference is a UserError, as are a missing file, a wrong width,
values that are not real numbers (complex, text, records), and values that are not finite after
the cast to float32 or larger than :data:`MAX_ABS`. Features that cover less of a video than its
annotated duration (by more than a window) are a counted warning, or a UserError when they cover
less than :data:`MIN_COVERAGE` of it.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Union

import numpy as np

from dcltal.data.feature_files import H5_SUFFIXES, SUFFIXES, H5File, load_file
from dcltal.errors import RepairLog, UserError

MAX_STREAM_SLACK = 2  # snippets by which two streams of a video may differ before it is an error
# the largest feature value accepted: its square (a LayerNorm's variance, a channel's RMS) stays far
# inside float32 (1e12 against 3e38), where 1e30 made NaN losses and 0 detections (issue 16)
MAX_ABS = 1e6
MIN_COVERAGE = 0.5  # features must cover at least this fraction of the annotated duration
REAL_KINDS = "biuf"  # numpy dtype kinds read as numbers: bool, signed and unsigned integers, floats
NOT_FEATURES = (".txt", ".json", ".md", ".yaml", ".yml", *H5_SUFFIXES)
Located = Union[Path, tuple[H5File, str]]  # a file, or a dataset of an HDF5 file


def _checked(arr: np.ndarray, where: str, width: int) -> np.ndarray:
    """``arr`` as float32, if it is a non-empty ``[T, C]`` of real numbers with at least ``width``
    columns, finite and at most :data:`MAX_ABS` in float32 (float64 1e300 is finite, its cast is not)."""
    if arr.dtype.kind not in REAL_KINDS or arr.dtype.fields is not None:
        raise UserError(f"feature file {where} holds {arr.dtype} values, expected real numbers "
                        "(float32 or float16); re-export the features")
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise UserError(f"feature file {where} has shape {list(arr.shape)}, expected [T, C] with T > 0")
    if arr.shape[1] < width:
        raise UserError(f"feature file {where} has {arr.shape[1]} columns, but the streams need {width}; "
                        "check data.streams")
    with np.errstate(over="ignore"):  # an overflow becomes inf, refused next
        arr = np.asarray(arr, dtype=np.float32)
    if not np.isfinite(arr).all():
        raise UserError(f"feature file {where} holds NaN or infinite values (as float32); re-extract the features")
    peak = float(np.abs(arr).max())
    if peak > MAX_ABS:
        raise UserError(f"feature file {where} holds a value of magnitude {peak:.3g}, above {MAX_ABS:.0e}; "
                        "rescale the features")
    return arr


def _name(found: Located) -> str:
    return str(found) if isinstance(found, Path) else f"{found[0].path}[{found[1]}]"


class FeatureStore:
    """Per-stream ``[T, D]`` float32 features of each video.

    ``spec``: one directory or HDF5 file (streams are column ranges of each array), or
    ``{stream: directory or HDF5 file}``. ``streams``: ``{stream: [lo, hi)}`` column ranges; in the
    per-stream layout they give each stream's width ``hi - lo``. ``cache=True`` keeps every loaded
    video in memory as float16 (half the memory of float32; DESIGN §4: features cached in memory), so
    later loads read no file. ``repairs`` collects the counted warnings; without one each repair is
    reported at once. ``prefix``/``suffix`` frame the id in file names; ``trust_pickle`` allows ``.pkl``.
    ``videos`` (id -> record with ``duration`` and ``fps``, e.g. ``Annotations.videos``) turns on the
    check that a video's features cover its duration, with snippets of ``window`` frames every
    ``stride`` (at the video's fps, else ``fps``).
    """

    def __init__(self, spec: str | os.PathLike | dict[str, str], streams: dict[str, list[int]],
                 cache: bool = False, repairs: RepairLog | None = None, prefix: str = "", suffix: str = "",
                 trust_pickle: bool = False, videos: Mapping[str, Any] | None = None, fps: float = 30.0,
                 stride: int = 4, window: int = 16) -> None:
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
            if d.suffix.lower() in H5_SUFFIXES:
                if not d.is_file():
                    raise UserError(f"feature file not found: {d} (check data.features)")
            elif not d.is_dir():
                raise UserError(f"features directory not found: {d} (check data.features)")
        self.prefix, self.suffix, self.trust_pickle = prefix, suffix, trust_pickle
        self.cache: dict[str, dict[str, np.ndarray]] | None = {} if cache else None
        self.repairs = repairs
        self._cut: set[str] = set()  # videos whose streams were cut, counted once each
        self.videos, self.grid = videos, (fps, stride, window)
        self._short: set[str] = set()  # videos whose features fall short of their duration, counted once each
        self._files: dict[str, dict[str, Located]] | None = None

    @classmethod
    def from_config(cls, data, cache: bool = False, repairs: RepairLog | None = None,
                    videos: Mapping[str, Any] | None = None) -> "FeatureStore":
        """The store of a config's ``data`` section (``videos``: the annotations', to check coverage)."""
        return cls(data.features, data.streams, cache=cache, repairs=repairs, prefix=data.feature_prefix,
                   suffix=data.feature_suffix, trust_pickle=data.trust_pickle, videos=videos, fps=data.fps,
                   stride=data.feature_stride, window=data.feature_window)

    def _list(self, source: Path) -> dict[str, Located]:
        """id -> file (or HDF5 dataset) of one directory or HDF5 file, the prefix and suffix taken off."""
        if source.suffix.lower() in H5_SUFFIXES:
            h5 = H5File(source)
            names: dict[str, Located] = {key: (h5, key) for key in h5.keys}
        else:
            names = {}
            for f in sorted(source.iterdir()):
                ext = f.suffix.lower()
                if f.name.startswith(".") or not f.is_file() or ext in NOT_FEATURES:
                    continue
                if ext in SUFFIXES:
                    names.setdefault(f.name[: -len(ext)], f)
                elif self.per_stream:  # P-GCN's extension-less files
                    names.setdefault(f.name, f)
        a, b = len(self.prefix), len(self.suffix)
        return {n[a: len(n) - b]: found for n, found in names.items()
                if len(n) > a + b and n.startswith(self.prefix) and n.endswith(self.suffix)}

    def _index(self) -> dict[str, dict[str, Located]]:
        """stream -> video id -> file, from one listing of each directory."""
        if self._files is None:
            listed = {d: self._list(d) for d in set(self.dirs.values())}
            self._files = {name: listed[d] for name, d in self.dirs.items()}
        return self._files

    def _find(self, stream: str, video_id: str) -> Located | None:
        """The file of ``video_id``, named ``<id>`` or (ActivityNet) ``v_<id>``, or the reverse."""
        files = self._index()[stream]
        other = video_id[2:] if video_id.startswith("v_") else f"v_{video_id}"
        return files.get(video_id, files.get(other))

    def __contains__(self, video_id: str) -> bool:
        return all(self._find(name, video_id) is not None for name in self.streams)

    def video_ids(self) -> list[str]:
        """Sorted ids (as the files name them) of the videos that have a file for every stream."""
        sets = [set(files) for files in self._index().values()]
        return sorted(set.intersection(*sets)) if sets else []

    def _path(self, stream: str, video_id: str) -> Located:
        found = self._find(stream, video_id)
        if found is not None:
            return found
        d, name = self.dirs[stream], f"{self.prefix}{video_id}{self.suffix}"
        if d.is_file():
            raise UserError(f"no dataset for video {video_id} in {d} (looked for {name}, with or without v_)")
        if not self.per_stream:
            raise UserError(f"feature file not found: {d / name}.npy (check data.features)")
        raise UserError(f"no feature file for video {video_id} in {d} (looked for {name}, with or without v_, "
                        f"and with no extension or one of {', '.join(SUFFIXES)})")

    def _load(self, found: Located) -> np.ndarray:
        if isinstance(found, Path):
            return load_file(found, self.trust_pickle)
        h5, key = found
        return h5.load(key)

    def _read(self, video_id: str) -> dict[str, np.ndarray]:
        """stream -> [T_s, D_s] float32 as stored, lengths not yet reconciled."""
        if not self.per_stream:
            found = self._path(next(iter(self.streams)), video_id)
            arr = _checked(self._load(found), _name(found), max(hi for _, hi in self.streams.values()))
            return {name: np.ascontiguousarray(arr[:, lo:hi])
                    for name, (lo, hi) in self.streams.items()}
        out = {}
        for name, (lo, hi) in self.streams.items():
            found = self._path(name, video_id)
            arr = _checked(self._load(found), _name(found), hi - lo)
            if arr.shape[1] != hi - lo:
                raise UserError(f"feature file {_name(found)} has {arr.shape[1]} columns, but data.streams.{name} "
                                f"says {hi - lo}; fix data.streams")
            out[name] = arr
        return out

    def _repair(self, kind: str, video_id: str, example: str) -> None:
        log = self.repairs if self.repairs is not None else RepairLog()
        log.add(kind, example)
        if self.repairs is None:
            log.report("features")

    def _check_coverage(self, video_id: str, num_snippets: int) -> None:
        """Features must reach the video's annotated end: within a window, else a counted warning;
        below :data:`MIN_COVERAGE` of it, a UserError (1 snippet for 188 s gave 200 detections)."""
        video = self.videos.get(video_id) if self.videos is not None else None
        duration = getattr(video, "duration", None)
        if not duration or video_id in self._short:
            return
        default_fps, stride, window = self.grid
        fps = getattr(video, "fps", None) or default_fps
        covered = ((num_snippets - 1) * stride + window) / fps
        if covered < MIN_COVERAGE * duration:
            raise UserError(f"video {video_id}: its {num_snippets} feature snippets cover {covered:.1f} s of its "
                            f"{duration:.1f} s (less than {MIN_COVERAGE:.0%}); check the features, data.fps, "
                            "data.feature_stride and data.feature_window")
        if duration - covered > window / fps:
            self._short.add(video_id)
            self._repair("videos whose features are shorter than the annotated duration by more than a window "
                         "(the end has no features)", video_id, f"{video_id}: {covered:.1f} s of {duration:.1f} s")

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
            self._repair("streams of one video differing by one or two snippets (cut to the shorter)", video_id,
                         f"{video_id}: {lengths}")
        return {name: f[:t] for name, f in feats.items()}

    def _read_checked(self, video_id: str) -> dict[str, np.ndarray]:
        feats = self._cut_to_shortest(video_id, self._read(video_id))
        self._check_coverage(video_id, len(next(iter(feats.values()))))
        return feats

    def load(self, video_id: str) -> dict[str, np.ndarray]:
        """stream -> ``[T, D]`` float32, every stream cut to the same ``T``."""
        if self.cache is None:
            return self._read_checked(video_id)
        if video_id not in self.cache:
            feats = self._read_checked(video_id)
            if any(np.abs(f).max() > np.finfo(np.float16).max for f in feats.values()):
                raise UserError(f"features of video {video_id} exceed the float16 range (65504); "
                                "turn the feature cache off or rescale the features")
            self.cache[video_id] = {name: f.astype(np.float16) for name, f in feats.items()}
        # the first load returns the same float16-rounded values as every later one
        return {name: f.astype(np.float32) for name, f in self.cache[video_id].items()}


def inverse_channel_rms(arrays) -> np.ndarray:
    """[D] float32: 1 / each channel's root mean square over every row of ``arrays`` ([T, D] each; the
    input scale of ``model.input_norm: rms`` and of the built-in video-level classifier); 1 for a
    channel that is zero everywhere."""
    squares, rows = 0.0, 0
    for x in arrays:
        x = np.asarray(x, dtype=np.float64)
        squares, rows = squares + (x * x).sum(0), rows + x.shape[0]
    rms = np.sqrt(squares / max(rows, 1))
    return np.where(rms > 0, 1.0 / np.where(rms > 0, rms, 1.0), 1.0).astype(np.float32)
