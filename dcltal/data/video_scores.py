"""External video-level class scores, fused into the detection scores at inference (paper §3.6,
the SSN/P-GCN practice on THUMOS14).

Two layouts:

- UntrimmedNet's ``uNet_test.npy``: a ``[videos, 101]`` array whose row is the THUMOS14 test video
  number minus one (``video_test_0000004`` -> row 3) and whose column is the UCF101 class id minus
  one. The class name -> UCF101 id map comes from ``class_map``: a dict, or a file, either a CSV
  with the columns ``class_name`` and ``ucf101_id`` (as ``thumos14/classes/thumos14_classes.csv``)
  or UCF101's ``classInd.txt`` (``id name`` a line). Without one, the 20 THUMOS14 classes use
  their ids from the official THUMOS14 annotation readme.
- a JSON ``{video: {label: score}}``; a class a video does not list scores 0.

The values are returned as stored (UntrimmedNet's are softmax scores); fusing them is the
engine's job. Every video asked for must have scores: a video absent from the JSON is a
UserError (scoring it without them would rank its detections on another scale than the rest).
"""
from __future__ import annotations

import csv
import os
import re
from pathlib import Path
from typing import Mapping

import numpy as np

from dcltal.errors import UserError
from dcltal.io import existing_path, read_json, read_text

# UCF101 ids of the THUMOS14 detection classes, from the official THUMOS14 annotation readme
THUMOS14_UCF101_IDS = {
    "BaseballPitch": 7, "BasketballDunk": 9, "Billiards": 12, "CleanAndJerk": 21, "CliffDiving": 22,
    "CricketBowling": 23, "CricketShot": 24, "Diving": 26, "FrisbeeCatch": 31, "GolfSwing": 33,
    "HammerThrow": 36, "HighJump": 40, "JavelinThrow": 45, "LongJump": 51, "PoleVault": 68,
    "Shotput": 79, "SoccerPenalty": 85, "TennisSwing": 92, "ThrowDiscus": 93, "VolleyballSpiking": 97,
}


def read_class_map(path: str | os.PathLike) -> dict[str, int]:
    """Class name -> UCF101 id from a CSV with ``class_name``, ``ucf101_id`` columns or a ``classInd.txt``."""
    p = Path(path)
    lines = read_text(p, "class map").splitlines()
    out: dict[str, int] = {}
    if lines and "," in lines[0]:
        header = [h.strip() for h in lines[0].split(",")]
        if "class_name" not in header or "ucf101_id" not in header:
            raise UserError(f"{p}: line 1: a class map CSV needs the columns class_name and ucf101_id")
        for n, row in enumerate(csv.DictReader(lines), start=2):
            try:
                out[row["class_name"].strip()] = int(row["ucf101_id"])
            except (TypeError, ValueError, AttributeError):
                raise UserError(f"{p}: line {n}: expected a class name and an integer ucf101_id") from None
        return out
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fields = line.split()
        try:
            out[fields[1]] = int(fields[0])
        except (IndexError, ValueError):
            raise UserError(f"{p}: line {n}: expected 'ucf101_id class_name' (UCF101 classInd.txt), got {line!r}") from None
    return out


def _test_video_row(vid: str, path: Path) -> int:
    """``video_test_0000004`` -> 3: the row of UntrimmedNet's score array."""
    m = re.search(r"(\d+)$", vid)
    if m is None or int(m.group(1)) < 1:
        raise UserError(f"video {vid} has no number at the end, so it has no row in {path} "
                        "(rows are THUMOS14 test video numbers); give a JSON {video: {label: score}} instead")
    return int(m.group(1)) - 1


def _from_untrimmednet(path: Path, videos: list[str], classes: list[str],
                       class_map: str | os.PathLike | Mapping[str, int] | None) -> dict[str, np.ndarray]:
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError):
        raise UserError(f"video scores {path} is not a valid .npy file") from None
    if arr.ndim != 2:
        raise UserError(f"video scores {path} has shape {list(arr.shape)}, expected [videos, UCF101 classes]")
    if not np.isfinite(arr).all():
        raise UserError(f"video scores {path} holds NaN or infinite values")
    if class_map is None:
        ids, source = THUMOS14_UCF101_IDS, "the THUMOS14 class list"
    elif isinstance(class_map, Mapping):
        ids, source = dict(class_map), "the class map given"
    else:
        ids, source = read_class_map(class_map), str(class_map)
    missing = [c for c in classes if c not in ids]
    if missing:
        raise UserError(f"class {missing[0]} has no UCF101 id in {source}; give a class map file "
                        "with the columns class_name, ucf101_id")
    columns = np.array([ids[c] - 1 for c in classes], dtype=np.int64)  # [C]
    if columns.size and (columns.min() < 0 or columns.max() >= arr.shape[1]):
        raise UserError(f"video scores {path} has {arr.shape[1]} columns; the UCF101 ids of {source} "
                        f"need {columns.max() + 1}")
    out = {}
    for vid in videos:
        row = _test_video_row(vid, path)
        if row >= arr.shape[0]:
            raise UserError(f"video {vid} would be row {row} of {path}, which has {arr.shape[0]} rows")
        out[vid] = arr[row, columns].astype(np.float64)
    return out


def _from_json(path: Path, videos: list[str], classes: list[str]) -> dict[str, np.ndarray]:
    obj = read_json(path, "video scores")
    if not isinstance(obj, dict):
        raise UserError(f"video scores {path}: expected a JSON object {{video: {{label: score}}}}")
    index = {name: i for i, name in enumerate(classes)}
    out = {}
    for vid in videos:
        if vid not in obj:
            raise UserError(f"video scores {path} have no entry for video {vid}; give scores for every video "
                            "(or set infer.video_scores to builtin or null)")
        entry = obj[vid]
        if not isinstance(entry, dict):
            raise UserError(f"video scores {path}: video {vid}: expected {{label: score}}, got {type(entry).__name__}")
        scores = np.zeros(len(classes))
        for label, score in entry.items():
            if label not in index:
                raise UserError(f"video scores {path}: video {vid}: label {label!r} is not a class "
                                f"of the annotations (e.g. {classes[0]!r})")
            if isinstance(score, bool) or not isinstance(score, (int, float)) or not np.isfinite(score):
                raise UserError(f"video scores {path}: video {vid}: score of {label!r} must be a finite number, got {score!r}")
            scores[index[label]] = score
        out[vid] = scores
    return out


def load_video_scores(path: str | os.PathLike, videos: list[str], classes: list[str],
                      class_map: str | os.PathLike | Mapping[str, int] | None = None) -> dict[str, np.ndarray]:
    """Video-level class scores of ``path`` -> ``{video: [C] float64}`` in the order of ``classes``.

    ``.npy``: UntrimmedNet's layout (see the module docstring; ``class_map`` maps class names to
    UCF101 ids); anything else: a JSON ``{video: {label: score}}``.
    """
    p = existing_path(path, "video scores")
    if p.suffix.lower() == ".npy":
        return _from_untrimmednet(p, list(videos), list(classes), class_map)
    return _from_json(p, list(videos), list(classes))
