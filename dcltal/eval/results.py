"""Ground truth and detections as flat numpy arrays, the input of every protocol.

Videos are numbered: first the subset's videos in annotation-file order, then the videos that
only the results name, in results-file order. Detections keep the results-file order (video by
video, then as listed), which is what the official evaluators' tie rules refer to.
"""
from __future__ import annotations

import gc
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain
from typing import Any, Iterable, Iterator

import numpy as np

from dcltal.data.annotations import Annotations
from dcltal.errors import RepairLog, UserError


@contextmanager
def paused_gc() -> Iterator[None]:
    """Run without the cyclic garbage collector, as the commands do while they load and evaluate.

    Results files hold hundreds of thousands of small dicts and lists and no reference cycles; the
    collector would re-scan them again and again while they load (about 40% of json.load's time).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@dataclass
class GroundTruth:
    video_ids: list[str]  # all numbered videos (subset first, then those only the results name)
    num_subset_videos: int  # video_ids[:num_subset_videos] are the subset's videos
    video: np.ndarray  # [M] int64 video number
    segments: np.ndarray  # [M, 2] float64 seconds
    labels: np.ndarray  # [M] int64 class index
    ambiguous_video: np.ndarray  # [K] int64 video number of each ambiguous segment
    ambiguous: np.ndarray  # [K, 2] float64 seconds


@dataclass
class Detections:
    video: np.ndarray  # [N] int64 video number (GroundTruth.video_ids)
    segments: np.ndarray  # [N, 2] float64 seconds
    labels: np.ndarray  # [N] int64 class index
    scores: np.ndarray  # [N] float64


def ground_truth(annotations: Annotations, subset: str, avoid: Iterable[str] = ()) -> GroundTruth:
    """The subset's ground truth, left out the videos named in ``avoid``."""
    avoid = set(avoid)
    videos = [v for v in annotations.in_subset(subset) if v.id not in avoid]
    counts = np.array([len(v.labels) for v in videos], dtype=np.int64)
    amb_counts = np.array([len(v.ambiguous) for v in videos], dtype=np.int64)
    number = np.arange(len(videos))
    return GroundTruth(
        video_ids=[v.id for v in videos],
        num_subset_videos=len(videos),
        video=np.repeat(number, counts),
        segments=np.concatenate([v.segments for v in videos] + [np.zeros((0, 2))]).astype(np.float64),
        labels=np.concatenate([v.labels for v in videos] + [np.zeros(0, np.int64)]).astype(np.int64),
        ambiguous_video=np.repeat(number, amb_counts),
        ambiguous=np.concatenate([v.ambiguous for v in videos] + [np.zeros((0, 2))]).astype(np.float64),
    )


def detections(results: Any, gt: GroundTruth, classes: list[str], avoid: Iterable[str] = (),
               source: str = "results") -> Detections:
    """Parse the ActivityNet results object ``{"results": {video: [{label, score, segment}]}}``.

    Videos the subset lacks are appended to ``gt.video_ids`` (their detections are false
    positives, as in the official evaluators). A label that is not a class of the ground truth,
    or an entry that is not ``{label, score, segment: [s, e]}`` with finite numbers, is a UserError.
    """
    if not isinstance(results, dict) or not isinstance(results.get("results"), dict):
        raise UserError(f"{source} has no 'results' object; expected the ActivityNet results JSON "
                        "{\"results\": {video: [{\"label\", \"score\", \"segment\"}]}}")
    avoid = set(avoid)
    number = {vid: i for i, vid in enumerate(gt.video_ids)}
    index = {name: i for i, name in enumerate(classes)}
    vids, labels, segments, scores = [], [], [], []
    for vid, dets in results["results"].items():
        if vid in avoid:
            continue
        if not isinstance(dets, list):
            raise UserError(f"{source}: video {vid!r}: expected a list of {{label, score, segment}} objects")
        if vid not in number:
            number[vid] = len(gt.video_ids)
            gt.video_ids.append(vid)
        try:
            labels += [d["label"] for d in dets]
            segments += [d["segment"] for d in dets]
            scores += [d["score"] for d in dets]
        except KeyError as e:
            raise UserError(f"{source}: video {vid!r}: a detection lacks the key {e.args[0]!r}") from None
        except TypeError:
            raise UserError(f"{source}: video {vid!r}: expected a list of {{label, score, segment}} objects") from None
        vids.append((number[vid], len(dets)))
    try:
        label_idx = np.fromiter(map(index.__getitem__, labels), dtype=np.int64, count=len(labels))
    except (KeyError, TypeError):
        bad = next(name for name in labels if not isinstance(name, str) or name not in index)
        raise UserError(f"{source}: label {bad!r} is not a class of the ground truth; "
                        f"the classes are {classes[:5]}{'...' if len(classes) > 5 else ''}") from None
    seg = _floats(segments, (len(segments), 2), source, "segment")
    score = _floats(scores, (len(scores),), source, "score")
    video = np.repeat(np.array([v for v, _ in vids], dtype=np.int64), [n for _, n in vids]).astype(np.int64)
    reversed_ = seg[:, 0] > seg[:, 1]
    if reversed_.any():  # repaired as the proposal readers repair theirs
        first = int(np.argmax(reversed_))
        log = RepairLog()
        log.add("detections with start after end (swapped)", f"{gt.video_ids[video[first]]} {segments[first]}",
                int(reversed_.sum()))
        log.report(source)
        seg[reversed_] = seg[reversed_, ::-1]
    return Detections(video, seg, label_idx, score)


def _floats(values: list, shape: tuple[int, ...], source: str, key: str) -> np.ndarray:
    """float64 array of ``shape`` from scores (numbers) or segments (pairs), or a UserError."""
    what = "[start, end], two finite numbers" if key == "segment" else "a finite number"
    try:
        if len(shape) == 2:  # flatten the pairs: much faster than asarray on a list of lists
            if len(values) and (np.fromiter(map(len, values), np.int64, len(values)) != 2).any():
                raise ValueError
            values = chain.from_iterable(values)
        arr = np.fromiter(values, np.float64, int(np.prod(shape))).reshape(shape)
    except (TypeError, ValueError):
        arr = None
    if arr is None or not np.isfinite(arr).all():
        raise UserError(f"{source}: every detection's {key!r} must be {what}; found one that is not")
    return arr
