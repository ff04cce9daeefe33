"""Proposal files (CONTRACT §1): read the three formats in the wild, write two of them.

Every reader returns ``{video_id: [N, 3] float64}`` rows ``(start s, end s, score)``, sorted by
score, highest first (a stable sort: tied scores keep file order). Formats:

- a directory of ``<video_id>.csv`` as BSN/BMN write them: a header with ``xmin``, ``xmax``
  (fractions of the video's duration, so the durations come from the annotations) and ``score``;
  other columns are ignored;
- one ActivityNet proposal JSON, seconds: ``{"results": {video: [{"segment": [s, e], "score": x}]}}``;
- the SSN/P-GCN proposal list text file, frames (seconds = frame / fps with the video's fps, else
  ``default_fps``). Those lists carry no score, so a proposal's score is ``1 - i / N`` for the
  ``i``-th of the video's ``N`` proposals: the file order is taken as the ranking. SSN's
  *normalised* lists (frame count times multiplier <= 1) hold fractions of the video's duration
  instead of frames, and need the durations from the annotations.

ActivityNet ids are matched with or without BSN's ``v_`` prefix (BSN names its CSVs
``v_<youtube id>.csv``; the official annotations and BSN's JSON drop the prefix).

Repairs, each counted once per kind and reported on stderr: proposals reaching outside the video
are clipped to it (those wholly outside are dropped); a reversed segment is swapped; a zero-length
one is dropped (it has no regions to pool); a video of ``videos`` with no proposals gets an empty
``[0, 3]`` array (it yields no detections). A video id that is a path (``..``, absolute) is a UserError.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from dcltal.errors import RepairLog, UserError
from dcltal.io import atomic_path, check_video_id, existing_path, read_json, read_text, write_json

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".mpg", ".mpeg")


def load_proposals(path: str | os.PathLike, videos: Mapping[str, Any] | None, default_fps: float,
                   repairs: RepairLog | None = None) -> dict[str, np.ndarray]:
    """Proposals of ``path`` (CSV directory, JSON or SSN list) -> ``{video: [N, 3]}`` (start s, end s, score).

    ``videos`` maps ids to records with ``duration`` (seconds or None) and ``fps`` (or None), e.g.
    the ``Annotations.videos`` of :mod:`dcltal.data.annotations`. Where given, the result holds
    exactly these videos; where None, every video of the file (not possible for a CSV directory,
    whose positions are fractions of the duration). Repairs are added to ``repairs``, or reported
    on stderr when no log is passed.
    """
    p = existing_path(path, "proposals")
    own_log = repairs is None
    log = RepairLog() if own_log else repairs
    if p.is_dir():
        raw = _read_bsn_dir(p, videos)
    elif p.suffix.lower() == ".json":
        raw = _read_proposal_json(p)
    else:
        raw = _read_ssn_list(p, videos, default_fps)
    out = _select_and_repair(p, raw, videos, log)
    if own_log:
        log.report(str(p))
    return out


def _alias(vid: str, found) -> str | None:
    """The key of ``found`` for ``vid``: itself, or the same ActivityNet id with/without ``v_``."""
    for key in (vid, "v_" + vid, vid[2:] if vid.startswith("v_") else None):
        if key is not None and key in found:
            return key
    return None


def _select_and_repair(path: Path, raw: dict[str, tuple[np.ndarray, float | None]],
                       videos: Mapping[str, Any] | None, log: RepairLog) -> dict[str, np.ndarray]:
    """Keep the videos asked for, clip to each video's duration, sort by score descending."""
    ids = list(raw) if videos is None else list(videos)
    keys = {vid: _alias(vid, raw) for vid in ids}
    if videos and not any(keys.values()):
        raise UserError(f"proposals {path} hold none of the {len(ids)} videos asked for (e.g. {ids[0]}); "
                        "check that data.proposals belongs to these annotations")
    out: dict[str, np.ndarray] = {}
    for vid in ids:
        if keys[vid] is None or len(raw[keys[vid]][0]) == 0:
            log.add("videos with no proposals (they yield no detections)", vid)
            out[vid] = np.zeros((0, 3))
            continue
        props, file_duration = raw[keys[vid]]
        duration = getattr(videos[vid], "duration", None) if videos is not None else None
        if duration is None:
            duration = file_duration
        out[vid] = repair_proposals(props.astype(np.float64), duration, vid, log)
    return out


def repair_proposals(props: np.ndarray, duration: float | None, vid: str, log: RepairLog) -> np.ndarray:
    """Swap reversed segments, drop zero-length ones, clip to ``[0, duration]``, drop those wholly
    outside, sort by score (where ``props`` [N, 2 or 3] has one); each repair counted in ``log``."""
    reversed_ = props[:, 0] > props[:, 1]
    log.add("proposals with start after end (swapped)", vid, int(reversed_.sum()))
    props[reversed_, :2] = props[reversed_, 1::-1]
    zero = props[:, 0] == props[:, 1]
    log.add("zero-length proposals (dropped)", vid, int(zero.sum()))
    props = props[~zero]
    hi = np.inf if duration is None else duration
    outside = (props[:, 0] < 0) | (props[:, 1] > hi)
    wholly = (props[:, 1] <= 0) | (props[:, 0] >= hi)
    log.add("proposals reaching outside the video (clipped)", vid, int((outside & ~wholly).sum()))
    log.add("proposals wholly outside the video (dropped)", vid, int((outside & wholly).sum()))
    props = props[~(outside & wholly)]
    props[:, :2] = np.clip(props[:, :2], 0.0, hi)
    return props[np.argsort(-props[:, 2], kind="stable")] if props.shape[1] > 2 else props


def _parse_float_rows(path: Path, lines: list[str], first_line: int, cols: list[int], sep: str | None) -> np.ndarray:
    """[len(lines), len(cols)] floats; a UserError naming the file and line of the first bad row."""
    rows = np.empty((len(lines), len(cols)))
    for i, line in enumerate(lines):
        fields = line.split(sep)
        try:
            rows[i] = [float(fields[c]) for c in cols]
        except (ValueError, IndexError):
            raise UserError(f"{path}: line {first_line + i}: expected {max(cols) + 1} numeric fields, "
                            f"got {line.strip()!r}; fix or remove the line") from None
    bad = ~np.isfinite(rows).all(axis=1)
    if bad.any():
        i = int(np.argmax(bad))
        raise UserError(f"{path}: line {first_line + i}: NaN or infinite value in {lines[i].strip()!r}")
    return rows


def _read_bsn_csv(path: Path, duration: float) -> np.ndarray:
    """One BSN/BMN CSV -> [N, 3] (start s, end s, score); xmin, xmax are fractions of ``duration``."""
    lines = [line for line in read_text(path, "proposals").splitlines() if line.strip()]
    if not lines:
        return np.zeros((0, 3))
    header = [h.strip() for h in lines[0].split(",")]
    missing = [c for c in ("xmin", "xmax", "score") if c not in header]
    if missing:
        raise UserError(f"{path}: line 1: header lacks {', '.join(missing)} (BSN/BMN CSV needs xmin, xmax, score)")
    cols = [header.index(c) for c in ("xmin", "xmax", "score")]
    rows = _parse_float_rows(path, lines[1:], 2, cols, ",")
    rows[:, :2] *= duration
    return rows


def _read_bsn_dir(path: Path, videos: Mapping[str, Any] | None) -> dict[str, tuple[np.ndarray, float | None]]:
    if videos is None:
        raise UserError(f"proposals {path} are BSN CSVs in fractions of the duration: "
                        "they need an annotation file with durations (data.annotations)")
    names = {f.stem for f in path.glob("*.csv")}
    out = {}
    for vid, video in videos.items():
        stem = _alias(vid, names)
        if stem is None:
            continue
        f = path / f"{stem}.csv"
        if getattr(video, "duration", None) is None:
            raise UserError(f"video {vid} has no duration in the annotations, needed for the BSN CSV {f}; "
                            "add `duration` to the annotation file")
        out[vid] = (_read_bsn_csv(f, video.duration), video.duration)
    return out


def _read_proposal_json(path: Path) -> dict[str, tuple[np.ndarray, float | None]]:
    obj = read_json(path, "proposals")
    results = obj.get("results") if isinstance(obj, dict) else None
    if not isinstance(results, dict):
        raise UserError(f"proposals {path}: no \"results\" object; expected "
                        '{"results": {video: [{"segment": [s, e], "score": x}, ...]}}')
    out = {}
    for vid, items in results.items():
        check_video_id(vid, path)
        try:
            rows = np.array([[float(it["segment"][0]), float(it["segment"][1]), float(it["score"])]
                             for it in items], dtype=np.float64).reshape(-1, 3)
        except (KeyError, IndexError, TypeError, ValueError):
            raise UserError(f"proposals {path}: video {vid}: each proposal needs "
                            '"segment": [start, end] and "score" as numbers') from None
        if not np.isfinite(rows).all():
            raise UserError(f"proposals {path}: video {vid}: NaN or infinite value in a proposal")
        out[vid] = (rows, None)
    return out


def _video_id_from_path(p: str) -> str:
    name = p.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    stem, ext = os.path.splitext(name)
    return stem if ext.lower() in VIDEO_EXTENSIONS else name


def _read_ssn_list(path: Path, videos: Mapping[str, Any] | None,
                   default_fps: float) -> dict[str, tuple[np.ndarray, float | None]]:
    """SSN/P-GCN list: blocks of ``# index``, video path, frame count, ``1`` (a multiplier of the
    count), ground-truth count and lines, proposal count and lines
    ``label best_iou overlap_self start_frame end_frame``. Frames -> seconds with the video's fps."""
    lines = read_text(path, "proposals (a CSV directory, a .json or an SSN list)").splitlines()
    out: dict[str, tuple[np.ndarray, float | None]] = {}
    i = 0

    def take(what: str) -> tuple[int, str]:
        nonlocal i
        while i < len(lines) and not lines[i].strip():
            i += 1
        if i >= len(lines):
            raise UserError(f"{path}: line {i + 1}: file ends where {what} was expected (an SSN proposal list)")
        i += 1
        return i, lines[i - 1].strip()

    def take_int(what: str) -> int:
        n, text = take(what)
        try:
            return int(float(text.split()[0]))
        except ValueError:
            raise UserError(f"{path}: line {n}: expected {what}, got {text!r} (an SSN proposal list)") from None

    while True:
        while i < len(lines) and not lines[i].strip():
            i += 1
        if i >= len(lines):
            break
        n, text = take("'# index'")
        if not text.startswith("#"):
            raise UserError(f"{path}: line {n}: expected '# index' to start a video's block, got {text!r}")
        _, vpath = take("the video path")
        vid = _video_id_from_path(vpath)
        n, text = take("the frame count")
        n2, mult = take("the frame-count multiplier")
        try:
            num_frames = float(text) * float(mult)
        except ValueError:
            raise UserError(f"{path}: line {n}: expected the frame count and '1', got {text!r}, {mult!r}") from None
        n_gt = take_int("the ground-truth count")
        i += n_gt  # ground truth comes from the annotation file
        n_prop = take_int("the proposal count")
        first = i + 1
        block = lines[i:i + n_prop]
        if len(block) < n_prop:
            raise UserError(f"{path}: line {first}: {n_prop} proposals announced, file ends after {len(block)}")
        i += n_prop
        rows = _parse_float_rows(path, block, first, [3, 4, 0], None)
        video = videos.get(vid) if videos is not None else None
        fps = getattr(video, "fps", None) or default_fps
        props = np.empty((n_prop, 3))
        props[:, 2] = 1.0 - np.arange(n_prop) / max(n_prop, 1)
        if num_frames > 1:
            props[:, :2] = rows[:, :2] / fps
            out[vid] = (props, num_frames / fps)
            continue
        duration = getattr(video, "duration", None)
        if duration is None:
            if video is None and videos is not None:
                continue  # a video not asked for
            raise UserError(f"{path}: video {vid}: a normalised SSN list (positions as fractions) needs "
                            "the video's duration from the annotations (data.annotations)")
        props[:, :2] = rows[:, :2] * duration
        out[vid] = (props, duration)
    return out


def write_bsn_csv(path: str | os.PathLike, proposals: np.ndarray, duration: float) -> None:
    """Write ``[N, 3]`` (start s, end s, score) as a BSN CSV: ``xmin,xmax,score``, positions as
    fractions of ``duration``. Atomic."""
    props = np.asarray(proposals, dtype=np.float64).reshape(-1, 3)
    rows = np.column_stack([props[:, 0] / duration, props[:, 1] / duration, props[:, 2]])
    with atomic_path(path) as tmp:
        np.savetxt(tmp, rows, fmt="%.10g", delimiter=",", header="xmin,xmax,score", comments="")


def write_proposal_json(path: str | os.PathLike, proposals: Mapping[str, np.ndarray]) -> None:
    """Write ``{video: [N, 3]}`` (start s, end s, score) as an ActivityNet proposal JSON. Atomic."""
    results = {vid: [{"segment": [float(s), float(e)], "score": float(x)}
                     for s, e, x in np.asarray(props, dtype=np.float64).reshape(-1, 3)]
               for vid, props in proposals.items()}
    write_json(path, {"version": "dcltal", "results": results, "external_data": {}})
