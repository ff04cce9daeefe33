"""The ``activitynet`` protocol: ActivityNet's official detection evaluator (eval_detection.py).

Per class with ground truth in the subset: detections sorted by score, descending, as the
official code does it (the class's detections in results-file order, numpy's ``argsort`` of the
scores, reversed; so tied scores fall exactly as they fall there, on this machine's numpy). Each
detection, in that order, claims the free ground truth of its video with the highest tIoU at or
above the threshold; ties in tIoU between ground truths are broken as the official code's
reversed ``argsort`` of the tIoU row breaks them. Everything else is a false positive (also
detections in videos without ground truth of that class). AP is the area under the interpolated
precision envelope (VOC 2011), mAP the mean over classes in order of first appearance in the
ground truth, as there.

Where the official code is not well defined we follow DESIGN §5: the tIoU of two zero-length
segments is 1 where they coincide and 0 elsewhere (the official 0/0 = NaN counts as a match), a
reversed detection overlaps nothing.
"""
from __future__ import annotations

import numpy as np

from dcltal.eval.matching import run_starts, same_key_pairs, serial_greedy
from dcltal.eval.results import Detections, GroundTruth


def segment_tiou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[P] tIoU of rows a[p] and b[p] ([P, 2] each), in the official evaluator's arithmetic."""
    return tiou_of_columns(a[:, 0], a[:, 1], b[:, 0], b[:, 1])


def tiou_of_columns(a0: np.ndarray, a1: np.ndarray, b0: np.ndarray, b1: np.ndarray) -> np.ndarray:
    """[P] tIoU of segments (a0, a1) and (b0, b1), each [P]; the official arithmetic, DESIGN §5 for points."""
    inter = np.minimum(a1, b1) - np.maximum(a0, b0)
    np.maximum(inter, 0.0, out=inter)
    union = (a1 - a0) + (b1 - b0) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / union
    degenerate = union <= 0  # only where both are points (or reversed): DESIGN §5's rule
    if degenerate.any():
        same_point = (a0 == b0) & (a1 == b1)
        iou[degenerate] = np.where(same_point[degenerate], 1.0, 0.0)
    return iou


def interpolated_ap(prec: np.ndarray, rec: np.ndarray) -> np.ndarray:
    """[T] area under the interpolated precision envelope (VOC 2011) of each row of prec, rec [T, n].

    Summed row by row over the recall steps only, as the official utils.py does, so the numbers
    agree to the last bit.
    """
    prec, rec = np.atleast_2d(prec), np.atleast_2d(rec)
    edge = np.zeros((len(prec), 1))
    mprec = np.hstack([edge, prec, edge])
    mrec = np.hstack([edge, rec, edge + 1.0])
    mprec = np.maximum.accumulate(mprec[:, ::-1], axis=1)[:, ::-1]  # precision envelope, right to left
    step = mrec[:, 1:] != mrec[:, :-1]  # [T, n + 1] where recall moves
    area = (mrec[:, 1:] - mrec[:, :-1]) * mprec[:, 1:]
    return np.array([np.sum(a[m]) for a, m in zip(area, step)])


def classes_in_order(gt: GroundTruth) -> np.ndarray:
    """Classes with ground truth, in order of first appearance (the official activity_index)."""
    classes, first = np.unique(gt.labels, return_index=True)
    return classes[np.argsort(first)]


def rank_by_class(det: Detections, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Detections of ``classes``, class by class, each best score first (official tie order).

    Returns ``ranked`` [N'] detection indices and ``bounds`` [len(classes) + 1] into it.
    """
    by_label = np.argsort(det.labels, kind="stable")  # file order inside a class
    sorted_labels = det.labels[by_label]
    lo, hi = np.searchsorted(sorted_labels, classes, "left"), np.searchsorted(sorted_labels, classes, "right")
    parts = []
    for a, b in zip(lo.tolist(), hi.tolist()):
        idx = by_label[a:b]
        parts.append(idx[np.argsort(det.scores[idx])[::-1]])
    bounds = np.concatenate([[0], np.cumsum([len(p) for p in parts])]).astype(np.int64)
    return np.concatenate(parts + [np.zeros(0, np.int64)]), bounds


def _pair_order(key: np.ndarray, pred: np.ndarray, local: np.ndarray, tiou: np.ndarray,
                row_tiou) -> np.ndarray:
    """Order of the pairs by (group, detection turn, the official visiting order of its ground truths).

    The official code visits ``tiou_row.argsort()[::-1]`` (the row: all the group's ground truths
    in file order). For distinct tIoUs that is highest first; numpy's default sort is not stable,
    so a detection with tied tIoUs among its pairs asks numpy's argsort of its full row itself
    (``row_tiou(p)``, indexed by ``local``): rare, only exact ties need it.
    """
    order = np.lexsort((-local, -tiou, key * (pred.max(initial=0) + 1) + pred))
    starts = np.flatnonzero(run_starts(pred[order]))  # each detection's pairs are one run
    ends = np.append(starts[1:], len(order))
    run = np.cumsum(run_starts(pred[order])) - 1
    tied = ~run_starts(pred[order], tiou[order])
    for r in np.unique(run[tied]):
        lo, hi = starts[r], ends[r]
        row = row_tiou(pred[order[lo]])
        visit = np.argsort(row)[::-1]  # locals in the official visiting order
        rank = np.empty(len(row), dtype=np.int64)
        rank[visit] = np.arange(len(row))
        mine = order[lo:hi]
        order[lo:hi] = mine[np.argsort(rank[local[mine]])]
    return order


def activitynet_ap(gt: GroundTruth, det: Detections, tiou: list[float] | np.ndarray, num_classes: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """[T, K] AP per threshold and evaluated class, and those K class indices (first-appearance order)."""
    thresholds = np.asarray(tiou, dtype=np.float64)
    classes = classes_in_order(gt)
    ranked, bounds = rank_by_class(det, classes)
    n_videos = len(gt.video_ids)
    det_key = det.labels[ranked] * n_videos + det.video[ranked]  # [N'] (class, video) group
    gt_key = gt.labels * n_videos + gt.video  # [M]
    i, j = same_key_pairs(det_key, gt_key)  # [P] position in ranked, ground truth; j in file order
    d0, d1 = det.segments[ranked, 0], det.segments[ranked, 1]  # [N'] columns gather faster than rows
    overlap = tiou_of_columns(d0[i], d1[i], gt.segments[j, 0], gt.segments[j, 1])
    keep = overlap >= thresholds.min()  # pairs below every threshold are never visited before a miss
    i, j, overlap = i[keep], j[keep], overlap[keep]
    gt_order = np.argsort(gt_key, kind="stable")  # [M] ground truth by group, file order inside
    sorted_key = gt_key[gt_order]
    local = np.empty(len(gt_key), dtype=np.int64)
    local[gt_order] = np.arange(len(gt_key))
    local -= np.searchsorted(sorted_key, gt_key)  # [M] index of each GT inside its group

    def row_tiou(p):  # the official tIoU row of ranked detection p: its group's GTs in file order
        members = gt_order[np.searchsorted(sorted_key, det_key[p]):np.searchsorted(sorted_key, det_key[p], "right")]
        return segment_tiou(np.repeat(det.segments[ranked[p]][None], len(members), 0), gt.segments[members])

    s = _pair_order(det_key[i], i, local[j], overlap, row_tiou)
    i, j, overlap, key = i[s], j[s], overlap[s], det_key[i[s]]
    sel = [np.flatnonzero(overlap >= thr) for thr in thresholds]
    t = np.repeat(np.arange(len(thresholds)), [len(x) for x in sel])
    pos = np.concatenate(sel + [np.zeros(0, np.int64)])
    claimed = serial_greedy(t * (key.max(initial=0) + 1) + key[pos], i[pos], t * len(gt.labels) + j[pos])
    tp = np.zeros((len(thresholds), len(ranked)), dtype=bool)  # [T, N']
    tp[t[claimed], i[pos][claimed]] = True
    npos = np.bincount(gt.labels, minlength=num_classes)
    ap = np.zeros((len(thresholds), len(classes)))
    tp_all = np.cumsum(tp, axis=1, dtype=np.int64)  # [T, N'] running counts, reset per class below
    for c_i, c in enumerate(classes):
        lo, hi = bounds[c_i], bounds[c_i + 1]
        if lo == hi:
            continue
        tp_cum = (tp_all[:, lo:hi] - (tp_all[:, lo - 1:lo] if lo else 0)).astype(np.float64)  # [T, n_c]
        fp_cum = np.arange(1, hi - lo + 1, dtype=np.float64) - tp_cum
        ap[:, c_i] = interpolated_ap(tp_cum / (tp_cum + fp_cum), tp_cum / float(npos[c]))
    return ap, classes
