"""Proposal recall as ActivityNet's eval_proposal.py defines it: AR@AN, AUC, recall at fixed tIoU.

The official ``average_recall_vs_avg_nr_proposals`` with ``max_avg_nr_proposals = 100`` (as BSN,
BMN and their successors run it):

- videos = those of the subset with ground truth; ``ratio = 100 * videos / proposals``; each
  video keeps its best ``min(int(n * ratio), n)`` proposals (sorted by score as there: numpy's
  ``argsort`` of the video's scores, reversed);
- at 100 points ``pcn = k / 100 * 100 * videos / kept`` (k = 1..100) a video uses its first
  ``min(int(kept_v * pcn), kept_v)`` proposals; a ground truth is recalled at tIoU t when one of
  them reaches t; recall = recalled / ground truths, over all videos; AR = the mean over tIoU
  0.5:0.05:0.95; AN = ``pcn * kept / videos`` (1..100);
- AUC = the trapezoid area under AR(AN) divided by the last AN (BSN's number, as a fraction).

Two differences, both where the official code is not well defined: only the subset's videos'
proposals count (the official divides by every proposal in the file, whatever its video), and
two zero-length segments that coincide have tIoU 1 (DESIGN §5; the official 0/0 never matches).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from dcltal.data.annotations import Annotations
from dcltal.errors import UserError
from dcltal.eval.detection import segment_tiou
from dcltal.eval.matching import run_starts

TIOU = np.linspace(0.5, 0.95, 10)
MAX_AVG_PROPOSALS = 100
REPORTED_AN = (1, 5, 10, 50, 100)


def recall_curve(gt_segments: list[np.ndarray], proposals: list[np.ndarray | None],
                 max_avg: int = MAX_AVG_PROPOSALS, tiou: np.ndarray = TIOU) -> tuple[np.ndarray, np.ndarray]:
    """recall [T, 100] and AN [100] for videos with ground truth [M_v, 2] and proposals [N_v, 3] (or None)."""
    n_videos = len(gt_segments)
    counts = np.array([0 if p is None else len(p) for p in proposals], dtype=np.int64)
    ratio = max_avg * float(n_videos) / max(int(counts.sum()), 1)
    kept = np.minimum((counts * ratio).astype(np.int64), counts)  # [V] proposals each video keeps
    # (ground truth, proposal) pairs, proposals best first, truncated to what the video keeps
    g_parts, c_parts, iou_parts = [], [], []
    g_offset = 0
    for gts, props, k in zip(gt_segments, proposals, kept):
        if k:
            best = props[np.argsort(props[:, 2])[::-1][:k], :2]  # [k, 2]
            g = np.repeat(np.arange(len(gts)), k)
            c = np.tile(np.arange(k), len(gts))
            g_parts.append(g + g_offset)
            c_parts.append(c)
            iou_parts.append(segment_tiou(gts[g], best[c]))
        g_offset += len(gts)
    pair_gt = np.concatenate(g_parts + [np.zeros(0, np.int64)])  # [P] sorted by (gt, column)
    pair_col = np.concatenate(c_parts + [np.zeros(0, np.int64)])
    pair_iou = np.concatenate(iou_parts + [np.zeros(0)])
    total_kept = int(kept.sum())
    pcn = np.arange(1, 101) / 100.0 * (max_avg * float(n_videos) / max(total_kept, 1))  # [100]
    # a video with no proposals is one column of zeros there: it recalls nothing either way
    width = np.maximum(kept, 1)
    use = np.minimum((width[:, None] * pcn[None, :]).astype(np.int64), width[:, None])  # [V, 100]
    gt_video = np.repeat(np.arange(n_videos), [len(g) for g in gt_segments])
    big = np.iinfo(np.int64).max
    recall = np.empty((len(tiou), len(pcn)))
    for t_i, thr in enumerate(tiou):
        first_hit = np.full(g_offset, big)  # [G] first proposal column reaching thr
        hit = np.flatnonzero(pair_iou >= thr)
        first = hit[run_starts(pair_gt[hit])]
        first_hit[pair_gt[first]] = pair_col[first]
        recall[t_i] = (first_hit[:, None] < use[gt_video]).sum(axis=0) / float(g_offset)
    return recall, pcn * (float(total_kept) / n_videos)


def evaluate_proposals(annotations: Annotations, proposals: dict[str, np.ndarray], subset: str) -> dict[str, Any]:
    """The ``eval-proposals --json`` object of CONTRACT §3 for ``{video: [N, 3] (start, end, score)}``."""
    videos = [v for v in annotations.in_subset(subset) if len(v.labels)]
    if not any(proposals.get(v.id) is not None and len(proposals[v.id]) for v in videos):
        raise UserError(f"no proposals for any video of subset {subset!r} with ground truth; check the video ids")
    recall, an = recall_curve([v.segments for v in videos], [proposals.get(v.id) for v in videos])
    average = recall.mean(axis=0)  # [100] AR at AN = 1..100
    trapezoid = getattr(np, "trapezoid", None) or np.trapz
    out: dict[str, Any] = {f"AR@{n}": float(average[n - 1]) for n in (1, 5, 10, 100)}
    out["AUC"] = float(trapezoid(average, an) / an[-1])
    for thr in (0.5, 0.7):
        row = recall[int(np.argmin(np.abs(TIOU - thr)))]
        out[f"recall@{thr}"] = {str(n): float(row[n - 1]) for n in REPORTED_AN}
    return out
