"""The ``thumos14`` protocol: the THUMOS14 kit as S-CNN, TURN and CBR used it (TH14evalDet_Updated.m).

Per class with ground truth in the subset, per video:

- detections sorted by confidence, descending (a stable sort: ties keep results-file order);
- each ground truth in turn (file order) claims the *free* detection with the largest overlap
  (the first such in that order on ties) if that overlap is strictly above the threshold;
- unmatched detections that overlap an ``Ambiguous`` segment of the video at all are dropped
  (neither true nor false positives);
- overlap is the kit's: intervals with start > end are swapped, intersection over the hull of
  the two intervals (= tIoU where they overlap), 0 where they only touch.

Then over all videos (sorted by name, as Matlab's ``unique`` does) a stable sort by confidence;
AP = the sum of the precision at each true positive / the number of ground truths (not
interpolated). A class without any detection scores 0. mAP is the mean over the classes.
"""
from __future__ import annotations

import numpy as np

from dcltal.eval.matching import same_key_pairs, serial_greedy
from dcltal.eval.results import Detections, GroundTruth


def kit_overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[P] overlap of rows a[p] and b[p] ([P, 2] each) as intervaloverlapvalseconds.m computes it."""
    a0, a1 = np.minimum(a[:, 0], a[:, 1]), np.maximum(a[:, 0], a[:, 1])  # reversed intervals swapped
    b0, b1 = np.minimum(b[:, 0], b[:, 1]), np.maximum(b[:, 0], b[:, 1])
    width = np.minimum(a1, b1) - np.maximum(a0, b0)
    hull = np.maximum(a1, b1) - np.minimum(a0, b0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(width > 0, width / hull, 0.0)


def thumos14_ap(gt: GroundTruth, det: Detections, tiou: list[float] | np.ndarray, num_classes: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """[T, K] AP per threshold and class with ground truth, and those K class indices (ascending)."""
    thresholds = np.asarray(tiou, dtype=np.float64)
    classes = np.unique(gt.labels)
    keep = np.isin(det.labels, classes)
    n_videos = len(gt.video_ids)
    file_order = np.arange(len(det.scores))
    det_rank = np.empty(len(det.scores), dtype=np.int64)  # confidence, descending; ties in file order
    det_rank[np.lexsort((file_order, -det.scores))] = file_order
    det_key = np.where(keep, det.labels * n_videos + det.video, -1)  # [N] (class, video) group
    gt_key = gt.labels * n_videos + gt.video  # [M]

    # each ground truth's candidates, best overlap first, then best confidence
    j, i = same_key_pairs(gt_key, det_key)  # [P] ground truth (file order), detection
    overlap = kit_overlap(gt.segments[j], det.segments[i])
    keep = overlap > thresholds.min()  # only these can ever be claimed
    j, i, overlap = j[keep], i[keep], overlap[keep]
    s = np.lexsort((det_rank[i], -overlap, j, gt_key[j]))
    j, i, overlap, key = j[s], i[s], overlap[s], gt_key[j[s]]
    sel = [np.flatnonzero(overlap > thr) for thr in thresholds]
    t = np.repeat(np.arange(len(thresholds)), [len(x) for x in sel])
    pos = np.concatenate(sel + [np.zeros(0, np.int64)])
    claimed = serial_greedy(t * (key.max(initial=0) + 1) + key[pos], j[pos], t * len(det.scores) + i[pos])
    tp = np.zeros((len(thresholds), len(det.scores)), dtype=bool)  # [T, N]
    tp[t[claimed], i[pos][claimed]] = True

    da, aa = same_key_pairs(det.video, gt.ambiguous_video)  # detections x ambiguous segments of their video
    touches = kit_overlap(det.segments[da], gt.ambiguous[aa]) > 0
    ambiguous = np.zeros(len(det.scores), dtype=bool)
    ambiguous[da[touches]] = True

    name_rank = np.empty(n_videos, dtype=np.int64)
    name_rank[np.argsort(np.array(gt.video_ids, dtype=object), kind="stable")] = np.arange(n_videos)
    order = np.lexsort((file_order, name_rank[det.video], -det.scores))  # the kit's final ranking
    order = order[np.argsort(det.labels[order], kind="stable")]  # class by class, ranking kept
    bounds = np.searchsorted(det.labels[order], np.concatenate([classes, [np.iinfo(np.int64).max]]))
    npos = np.bincount(gt.labels, minlength=num_classes)
    ap = np.zeros((len(thresholds), len(classes)))
    for c_i, c in enumerate(classes):
        mine = order[bounds[c_i]:bounds[c_i + 1]]  # [n_c] this class's detections, ranked
        for t_i in range(len(thresholds)):
            hit = tp[t_i, mine]
            hit = hit[hit | ~ambiguous[mine]]  # unmatched detections on Ambiguous parts are dropped
            if hit.any():
                prec = np.cumsum(hit, dtype=np.float64) / np.arange(1, len(hit) + 1)  # tp / (tp + fp)
                ap[t_i, c_i] = np.cumsum(prec[hit])[-1] / npos[c]  # summed in order, as the kit's loop
    return ap, classes
