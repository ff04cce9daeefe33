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
    inter = np.clip(np.minimum(a[:, 1], b[:, 1]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    union = (a[:, 1] - a[:, 0]) + (b[:, 1] - b[:, 0]) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / union, 0.0)
    same_point = (union <= 0) & (a[:, 0] == b[:, 0]) & (a[:, 1] == b[:, 1])
    return np.where(same_point, 1.0, iou)


def interpolated_ap(prec: np.ndarray, rec: np.ndarray) -> float:
    """Area under the interpolated precision envelope (VOC 2011), as the official utils.py sums it."""
    mprec = np.concatenate([[0.0], prec, [0.0]])
    mrec = np.concatenate([[0.0], rec, [1.0]])
    mprec = np.maximum.accumulate(mprec[::-1])[::-1]  # precision envelope, right to left
    idx = np.flatnonzero(mrec[1:] != mrec[:-1]) + 1
    return float(np.sum((mrec[idx] - mrec[idx - 1]) * mprec[idx]))


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
    parts = []
    for c in classes:
        idx = by_label[np.searchsorted(sorted_labels, c, "left"):np.searchsorted(sorted_labels, c, "right")]
        parts.append(idx[np.argsort(det.scores[idx])[::-1]])
    bounds = np.concatenate([[0], np.cumsum([len(p) for p in parts])]).astype(np.int64)
    return np.concatenate(parts + [np.zeros(0, np.int64)]), bounds


def _preference(pred: np.ndarray, local: np.ndarray, tiou: np.ndarray) -> np.ndarray:
    """[P] rank of each pair's ground truth in its detection's official order (reversed argsort).

    pred [P] ascending, local [P] index of the ground truth among its group's. The official code
    visits ``tiou_row.argsort()[::-1]``; a non-stable sort may order equal tIoUs either way, so
    rows with ties ask numpy's argsort itself (rare: only exact ties need it).
    """
    order = np.lexsort((-local, -tiou, pred))  # highest tIoU first
    start = np.flatnonzero(run_starts(pred))
    run_start = np.repeat(start, np.diff(np.append(start, len(pred))))
    pref = np.empty(len(pred), dtype=np.int64)
    pref[order] = np.arange(len(pred)) - run_start
    tied = run_starts(pred[order], tiou[order])
    for p in np.unique(pred[order][~tied]):
        lo, hi = np.searchsorted(pred, p, "left"), np.searchsorted(pred, p, "right")
        visit = np.argsort(tiou[lo:hi])[::-1]
        pref[lo + visit] = np.arange(hi - lo)
    return pref


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
    overlap = segment_tiou(det.segments[ranked[i]], gt.segments[j])
    group_start = np.searchsorted(np.sort(gt_key), gt_key[j])  # position of the group's first GT
    local = np.argsort(np.argsort(gt_key, kind="stable"))[j] - group_start  # GT index inside its group
    pref = _preference(i, local, overlap)
    s = np.lexsort((pref, i, det_key[i]))  # pairs by group, detection turn (= rank), preference
    i, j, overlap, key = i[s], j[s], overlap[s], det_key[i[s]]
    tp = np.zeros((len(thresholds), len(ranked)), dtype=bool)
    sel = [np.flatnonzero(overlap >= thr) for thr in thresholds]
    t = np.repeat(np.arange(len(thresholds)), [len(x) for x in sel])
    pos = np.concatenate(sel + [np.zeros(0, np.int64)])
    claimed = serial_greedy(t * (key.max(initial=0) + 1) + key[pos], i[pos], t * len(gt.labels) + j[pos])
    tp[t[claimed], i[pos][claimed]] = True
    npos = np.bincount(gt.labels, minlength=num_classes)
    ap = np.zeros((len(thresholds), len(classes)))
    for c_i, c in enumerate(classes):
        tp_c = tp[:, bounds[c_i]:bounds[c_i + 1]]
        if not tp_c.shape[1]:
            continue
        tp_cum = np.cumsum(tp_c, axis=1, dtype=np.float64)
        fp_cum = np.cumsum(~tp_c, axis=1, dtype=np.float64)
        rec, prec = tp_cum / float(npos[c]), tp_cum / (tp_cum + fp_cum)
        for t_i in range(len(thresholds)):
            ap[t_i, c_i] = interpolated_ap(prec[t_i], rec[t_i])
    return ap, classes
