"""Ground-truth annotations in the ActivityNet-style JSON (CONTRACT §1), both dialects.

- ActivityNet v1.3 official: subsets ``training``/``validation``/``testing``, no ``label_id``,
  no ``fps``; extra keys (``url``, ``resolution``, ``taxonomy``) are ignored.
- ActionFormer's THUMOS14 file: subsets ``Validation``/``Test``, ``label_id`` and ``fps``.
- Written by ``dcltal convert thumos14``: a per-video ``ambiguous`` list of ``[s, e]``.

Class indices come from ``label_id`` where present, else from a classes file (one name a line,
line number = index), else from the sorted label names.

Repairs, counted and reported once per kind on stderr: ground truth ending after the video is
clipped to it (``clip=True``; ``dcltal eval`` loads with ``clip=False`` because the official
evaluators score the segments as written), reversed segments are swapped, zero-length segments
are kept, segments wholly before 0 s are dropped (no detection can match them) and those starting
before it are clipped to 0 (``clip=True``). Everything else that is wrong is a :class:`UserError`
naming the file and the video, as is a video listed twice or an id that is a path.
Torch-free: ``dcltal eval`` imports this.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dcltal.errors import RepairLog, UserError
from dcltal.io import check_video_id, read_json, read_text


_NO_SEGMENTS = np.zeros((0, 2))
_NO_SEGMENTS.flags.writeable = False


@dataclass
class Video:
    id: str
    subset: str
    duration: float | None  # seconds
    fps: float | None
    segments: np.ndarray  # [M, 2] float64 seconds
    labels: np.ndarray  # [M] int64 class index into Annotations.classes
    ambiguous: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))  # [K, 2] float64 seconds


@dataclass
class Annotations:
    videos: dict[str, Video]
    classes: list[str]

    def in_subset(self, name: str) -> list[Video]:
        """The videos of subset ``name`` in file order; a UserError lists the subsets present."""
        found = [v for v in self.videos.values() if v.subset == name]
        if not found:
            present = sorted({v.subset for v in self.videos.values()})
            raise UserError(f"subset {name!r} not in the annotations; the subsets present are {present}")
        return found


def read_classes_file(path: str | os.PathLike) -> list[str]:
    """Class names, one a line (blank lines skipped); the line number is the class index."""
    names = [line.strip() for line in read_text(path, "classes file").splitlines() if line.strip()]
    if len(set(names)) != len(names):
        raise UserError(f"classes file {path} names a class twice; give each class one line")
    return names


def _number(value, path: Path, vid: str, key: str) -> float | None:
    if value is None:
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise UserError(f"{path}: video {vid!r}: {key!r} must be a number, got {value!r}") from None
    if not np.isfinite(x) or x < 0:
        raise UserError(f"{path}: video {vid!r}: {key!r} must be a finite non-negative number, got {value!r}")
    return x


def _pairs(items, path: Path, vid: str, what: str, raw=None) -> np.ndarray:
    """[M, 2] float64 from a list of two-number pairs, or a UserError naming the bad one (and its video)."""
    try:
        arr = np.asarray(items, dtype=np.float64).reshape(len(items), 2) if len(items) else np.zeros((0, 2))
    except (TypeError, ValueError):
        arr = None
    if arr is None or not np.isfinite(arr).all():
        if raw is not None:  # find the video of the bad segment
            vid, bad = next((v, s) for v, _, _, segs, _ in raw for s in segs if not _is_pair(s))
        else:
            bad = next((s for s in items if not _is_pair(s)), items[0] if items else None)
        raise UserError(f"{path}: video {vid!r}: {what} {bad!r} is not two finite numbers [start, end] in seconds")
    return arr


def _is_pair(s) -> bool:
    try:
        return isinstance(s, (list, tuple)) and len(s) == 2 and all(np.isfinite(float(x)) for x in s)
    except (TypeError, ValueError):
        return False


def load_annotations(path: str | os.PathLike, classes_file: str | os.PathLike | None = None,
                     clip: bool = True) -> Annotations:
    """Read an annotation JSON of either dialect into :class:`Annotations` (see the module doc)."""
    path = Path(path)
    data = read_json(path, "annotation file")
    if not isinstance(data, dict) or not isinstance(data.get("database"), dict):
        raise UserError(f"annotation file {path} has no 'database' object; expected the ActivityNet-style JSON "
                        "{\"database\": {video: {\"subset\", \"annotations\"}}}")
    log = RepairLog()
    raw: list[tuple[str, dict, list[str], list, list]] = []  # video, entry, labels, segments, label_ids
    for vid, entry in data["database"].items():
        check_video_id(vid, path)
        if not isinstance(entry, dict) or "subset" not in entry:
            raise UserError(f"{path}: video {vid!r} needs an object with a 'subset' key")
        anns = entry.get("annotations", [])
        if not isinstance(anns, list) or not all(isinstance(a, dict) for a in anns):
            raise UserError(f"{path}: video {vid!r}: 'annotations' must be a list of objects")
        try:
            labels = [str(a["label"]) for a in anns]
            segs = [a["segment"] for a in anns]
        except KeyError as e:
            raise UserError(f"{path}: video {vid!r}: an annotation lacks the key {e.args[0]!r}") from None
        raw.append((vid, entry, labels, segs, [a.get("label_id") for a in anns]))

    classes = _classes(path, raw, classes_file, log)
    index = {name: i for i, name in enumerate(classes)}
    missing = next((name for _, _, labels, _, _ in raw for name in labels if name not in index), None)
    if missing is not None:
        raise UserError(f"{path}: label {missing!r} is not in the classes file {classes_file}; add it there")
    # one flat array for all videos, repaired at once, then a view a video: fast on ActivityNet's 19k videos
    counts = np.array([len(segs) for _, _, _, segs, _ in raw], dtype=np.int64)
    flat_segs = [s for _, _, _, segs, _ in raw for s in segs]
    seg = _pairs(flat_segs, path, "any", "segment", raw)
    durations = [_number(entry.get("duration"), path, vid, "duration") for vid, entry, _, _, _ in raw]
    owner = np.repeat(np.arange(len(raw)), counts)  # [M] segment -> video
    dur = np.array([np.inf if d is None else d for d in durations])[owner]
    labels = np.fromiter((index[name] for _, _, names, _, _ in raw for name in names), np.int64, len(flat_segs))
    seg, keep = _repair(seg, dur, [vid for vid, *_ in raw], owner, log, clip)
    seg, labels = seg[keep], labels[keep]
    offsets = np.concatenate([[0], np.cumsum(np.bincount(owner[keep], minlength=len(raw)))])
    videos: dict[str, Video] = {}
    for i, (vid, entry, _, _, _) in enumerate(raw):
        amb = entry.get("ambiguous")
        if amb is None:
            amb = _NO_SEGMENTS
        elif not isinstance(amb, list):
            raise UserError(f"{path}: video {vid!r}: 'ambiguous' must be a list of [start, end] pairs")
        else:
            amb = np.sort(_pairs(amb, path, vid, "ambiguous segment"), axis=1)
        lo, hi = offsets[i], offsets[i + 1]
        videos[str(vid)] = Video(str(vid), str(entry["subset"]), durations[i],
                                 _number(entry.get("fps"), path, vid, "fps"), seg[lo:hi], labels[lo:hi], amb)
    log.report(str(path))
    return Annotations(videos, classes)


def _classes(path: Path, raw, classes_file, log: RepairLog) -> list[str]:
    """Class names by index: from ``label_id`` where present, else the classes file, else sorted names.

    With both, the classes file must agree with every ``label_id`` (it may name classes the file
    has no instance of). Without one, ids that leave gaps (a small subset may lack a class) are a
    counted warning and the classes present are indexed in the order of their ids.
    """
    ids: dict[str, int] = {}
    for vid, _, labels, _, label_ids in raw:
        for name, lid in zip(labels, label_ids):
            if lid is None:
                continue
            if not isinstance(lid, int) or lid < 0:
                raise UserError(f"{path}: video {vid!r}: label_id {lid!r} must be a non-negative integer")
            if ids.setdefault(name, lid) != lid:
                raise UserError(f"{path}: label {name!r} has two label_ids ({ids[name]} and {lid}); keep one")
    names = sorted({name for _, _, labels, _, _ in raw for name in labels})
    if ids and len(ids) != len(names):
        raise UserError(f"{path}: some annotations have a 'label_id' and some do not; give every annotation one")
    by_id = {lid: name for name, lid in ids.items()}
    if len(by_id) != len(ids):
        raise UserError(f"{path}: two classes share a label_id; give each class its own")
    if classes_file is not None:
        listed = read_classes_file(classes_file)
        wrong = [(lid, name) for lid, name in sorted(by_id.items()) if lid >= len(listed) or listed[lid] != name]
        if wrong:
            raise UserError(f"classes file {classes_file} disagrees with the label_id of {path}: id {wrong[0][0]} is "
                            f"{wrong[0][1]!r} there; fix the order of the classes file")
        return listed
    if not ids:
        return names
    order = sorted(by_id)
    if order != list(range(len(order))):
        gaps = sorted(set(range(order[-1] + 1)) - set(order))
        log.add("label_ids without a class of this file (the classes present are indexed in id order; "
                "a classes file keeps the ids)", f"id {gaps[0]}", len(gaps))
    return [by_id[i] for i in order]


def _repair(seg: np.ndarray, duration: np.ndarray, vids: list[str], owner: np.ndarray, log: RepairLog,
            clip: bool) -> tuple[np.ndarray, np.ndarray]:
    """Swap reversed segments, count zero-length ones (kept), drop those wholly before 0 s, clip
    starts to 0 and ends to ``duration`` where ``clip``. Returns the segments and the [M] bool of
    those kept.

    seg [M, 2], duration [M] (inf where unknown), owner [M] index into ``vids``.
    """
    def example(mask):
        i = int(np.flatnonzero(mask)[0])
        return f"{vids[owner[i]]} {seg[i].tolist()}"

    reversed_ = seg[:, 1] < seg[:, 0]
    if reversed_.any():
        log.add("reversed ground-truth segments (swapped)", example(reversed_), int(reversed_.sum()))
        seg = np.sort(seg, axis=1)
    negative = (seg[:, 0] < 0) & (seg[:, 1] <= 0)
    if negative.any():
        log.add("ground truth wholly before 0 s (dropped)", example(negative), int(negative.sum()))
    keep = ~negative
    zero = (seg[:, 1] == seg[:, 0]) & keep
    if zero.any():
        log.add("zero-length ground-truth segments (kept)", example(zero), int(zero.sum()))
    early = (seg[:, 0] < 0) & keep
    if clip and early.any():
        log.add("ground truth starting before 0 s (clipped to 0)", example(early), int(early.sum()))
        seg = np.maximum(seg, 0.0)
    late = (seg[:, 1] > duration) & keep
    if clip and late.any():
        log.add("ground truth ending after the video (clipped to its duration)",
                f"{example(late)} > {duration[late][0]}", int(late.sum()))
        seg = np.minimum(seg, duration[:, None])
    return seg, keep
