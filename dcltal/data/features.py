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
a counted warning; a larger difference is a UserError, as are a missing file, a wrong width and
NaN/Inf values.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import numpy as np

from dcltal.data.feature_files import H5_SUFFIXES, SUFFIXES, H5File, load_file
from dcltal.errors import RepairLog, UserError

MAX_STREAM_SLACK = 2  # snippets by which two streams of a video may differ before it is an error
NOT_FEATURES = (".txt", ".json", ".md", ".yaml", ".yml", *H5_SUFFIXES)
Located = Union[Path, tuple[H5File, str]]  # a file, or a dataset of an HDF5 file


def _check(arr: np.ndarray, where: str, width: int) -> None:
    """``arr`` must be a non-empty ``[T, C]`` of finite values with at least ``width`` columns."""
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise UserError(f"feature file {where} has shape {list(arr.shape)}, expected [T, C] with T > 0")
    if arr.shape[1] < width:
        raise UserError(f"feature file {where} has {arr.shape[1]} columns, but the streams need {width}; "
                        "check data.streams")
    if not np.isfinite(arr).all():
        raise UserError(f"feature file {where} holds NaN or infinite values; re-extract the features")


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
    """

    def __init__(self, spec: str | os.PathLike | dict[str, str], streams: dict[str, list[int]],
                 cache: bool = False, repairs: RepairLog | None = None, prefix: str = "", suffix: str = "",
                 trust_pickle: bool = False) -> None:
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
        self._files: dict[str, dict[str, Located]] | None = None

    @classmethod
    def from_config(cls, data, cache: bool = False, repairs: RepairLog | None = None) -> "FeatureStore":
        """The store of a config's ``data`` section."""
        return cls(data.features, data.streams, cache=cache, repairs=repairs, prefix=data.feature_prefix,
                   suffix=data.feature_suffix, trust_pickle=data.trust_pickle)

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
            arr = self._load(found)
            _check(arr, _name(found), max(hi for _, hi in self.streams.values()))
            return {name: np.ascontiguousarray(arr[:, lo:hi], dtype=np.float32)
                    for name, (lo, hi) in self.streams.items()}
        out = {}
        for name, (lo, hi) in self.streams.items():
            found = self._path(name, video_id)
            arr = self._load(found)
            _check(arr, _name(found), hi - lo)
            if arr.shape[1] != hi - lo:
                raise UserError(f"feature file {_name(found)} has {arr.shape[1]} columns, but data.streams.{name} "
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
