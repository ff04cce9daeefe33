"""Slow, obvious reference implementations of the evaluation protocols, for tests and the benchmark.

They follow the official code's loops one detection (or one ground truth) at a time, with plain
Python structures: ActivityNet's eval_detection.py / eval_proposal.py / utils.py, and the THUMOS14
kit's TH14evalDet_Updated.m. Inputs are plain lists, so they share nothing with dcltal.eval but
the tIoU rule for zero-length segments (DESIGN §5), taken from dcltal.data.segments.

gt:  list of (video, label, start, end) in annotation-file order
det: list of (video, label, start, end, score) in results-file order
ambiguous: list of (video, start, end)
"""
from __future__ import annotations

import numpy as np

from dcltal.data.segments import pairwise_tiou


def interpolated_prec_rec(prec, rec):
    """VOC 2011 interpolated AP, as ActivityNet's utils.py (a Python loop for the envelope)."""
    mprec = np.hstack([[0], prec, [0]])
    mrec = np.hstack([[0], rec, [1]])
    for i in range(len(mprec) - 1)[::-1]:
        mprec[i] = max(mprec[i], mprec[i + 1])
    idx = np.where(mrec[1::] != mrec[0:-1])[0] + 1
    return float(np.sum((mrec[idx] - mrec[idx - 1]) * mprec[idx]))


def activitynet_reference(gt, det, tiou):
    """{label: [AP per tIoU]} and the label order of first appearance, as eval_detection.py."""
    order = []
    for _, label, _, _ in gt:
        if label not in order:
            order.append(label)
    ap = {}
    for label in order:
        gts = [g for g in gt if g[1] == label]
        preds = [d for d in det if d[1] == label]
        ap[label] = _ap_one_class(gts, preds, tiou)
    return ap, order


def _ap_one_class(gts, preds, tiou):
    ap = np.zeros(len(tiou))
    if not preds:
        return ap
    npos = float(len(gts))
    lock = -np.ones((len(tiou), len(gts)))
    scores = np.array([p[4] for p in preds])
    preds = [preds[k] for k in scores.argsort()[::-1]]
    tp = np.zeros((len(tiou), len(preds)))
    fp = np.zeros((len(tiou), len(preds)))
    for idx, (video, _, start, end, _) in enumerate(preds):
        mine = [k for k, g in enumerate(gts) if g[0] == video]  # global GT indices of this video
        if not mine:
            fp[:, idx] = 1
            continue
        segs = np.array([[gts[k][2], gts[k][3]] for k in mine])
        tiou_arr = pairwise_tiou(np.array([[start, end]]), segs)[0]
        sorted_idx = tiou_arr.argsort()[::-1]
        for t, thr in enumerate(tiou):
            for jdx in sorted_idx:
                if tiou_arr[jdx] < thr:
                    fp[t, idx] = 1
                    break
                if lock[t, mine[jdx]] >= 0:
                    continue
                tp[t, idx] = 1
                lock[t, mine[jdx]] = idx
                break
            if fp[t, idx] == 0 and tp[t, idx] == 0:
                fp[t, idx] = 1
    tp_cum = np.cumsum(tp, axis=1).astype(float)
    fp_cum = np.cumsum(fp, axis=1).astype(float)
    rec = tp_cum / npos
    prec = tp_cum / (tp_cum + fp_cum)
    return np.array([interpolated_prec_rec(prec[t], rec[t]) for t in range(len(tiou))])


def _kit_overlap(i1, i2):
    """intervalsingleoverlapvalseconds.m: swap reversed intervals, intersection over the hull."""
    a0, a1 = min(i1), max(i1)
    b0, b1 = min(i2), max(i2)
    width = min(a1, b1) - max(a0, b0)
    return width / (max(a1, b1) - min(a0, b0)) if width > 0 else 0.0


def thumos14_reference(gt, det, ambiguous, tiou):
    """{label: [AP per tIoU]} for labels with ground truth, as TH14evalDet_Updated.m."""
    labels = sorted({g[1] for g in gt})
    return {label: [_th14_one_class(gt, det, ambiguous, label, thr) for thr in tiou] for label in labels}


def _th14_one_class(gt, det, ambiguous, label, thr):
    npos = sum(1 for g in gt if g[1] == label)
    if not any(d[1] == label for d in det):
        return 0.0
    videos = sorted({g[0] for g in gt} | {d[0] for d in det})
    conf_all, flag_all = [], []
    for video in videos:
        gts = [g for g in gt if g[0] == video and g[1] == label]
        amb = [a for a in ambiguous if a[0] == video]
        dets = [d for d in det if d[0] == video and d[1] == label]
        if not dets:
            continue
        dets = sorted(dets, key=lambda d: -d[4])  # stable, like Matlab's sort
        free = [True] * len(dets)
        for g in gts:
            best, best_k = None, None
            for k, d in enumerate(dets):
                if free[k]:
                    ov = _kit_overlap((g[2], g[3]), (d[2], d[3]))
                    if best is None or ov > best:
                        best, best_k = ov, k
            if best is not None and best > thr:
                free[best_k] = False
        for k, d in enumerate(dets):
            touches = any(_kit_overlap((a[1], a[2]), (d[2], d[3])) > 0 for a in amb)
            if not free[k]:
                conf_all.append(d[4]); flag_all.append(1)
            elif not touches:
                conf_all.append(d[4]); flag_all.append(2)
    order = sorted(range(len(conf_all)), key=lambda k: -conf_all[k])  # stable
    tp = fp = 0
    ap = 0.0
    for k in order:
        if flag_all[k] == 1:
            tp += 1
            ap += tp / (tp + fp)
        else:
            fp += 1
    return ap / npos


def proposal_reference(gt, proposals, max_avg=100, tiou=np.linspace(0.5, 0.95, 10)):
    """recall [T, 100], average recall [100], AN [100] as eval_proposal.py's loops compute them.

    gt: list of (video, start, end); proposals: list of (video, start, end, score), file order.
    Only videos with ground truth are evaluated, and only their proposals counted.
    """
    videos = list(dict.fromkeys(g[0] for g in gt))
    proposals = [p for p in proposals if p[0] in videos]
    ratio = max_avg * float(len(videos)) / len(proposals)
    score_lst, total = [], 0
    for video in videos:
        gts = np.array([[g[1], g[2]] for g in gt if g[0] == video])
        props = [p for p in proposals if p[0] == video]
        if not props:
            score_lst.append(np.zeros((len(gts), 1)))
            continue
        scores = np.array([p[3] for p in props])
        segs = np.array([[p[1], p[2]] for p in props])[scores.argsort()[::-1]]
        n = min(int(len(segs) * ratio), len(segs))
        total += n
        segs = segs[:n]
        score_lst.append(np.array([[pairwise_tiou(s[None], g[None])[0, 0] for s in segs] for g in gts]).reshape(len(gts), n))
    pcn = np.arange(1, 101) / 100.0 * (max_avg * float(len(videos)) / total)
    matches = np.empty((len(videos), len(pcn)))
    positives = np.empty(len(videos))
    recall = np.empty((len(tiou), len(pcn)))
    for r, thr in enumerate(tiou):
        for i, score in enumerate(score_lst):
            positives[i] = score.shape[0]
            hits = score >= thr
            use = np.minimum((score.shape[1] * pcn).astype(int), score.shape[1])
            for j, k in enumerate(use):
                matches[i, j] = np.count_nonzero(hits[:, :k].sum(axis=1))
        recall[r] = matches.sum(axis=0) / positives.sum()
    return recall, recall.mean(axis=0), pcn * (float(total) / len(videos))


def random_case(rng, videos=4, classes=3, max_gt=6, max_det=10, grid=0.5, ambiguous=True, extra_videos=1):
    """A small random case on a coarse grid (so tied scores, tied tIoUs and zero-length segments occur).

    Returns (annotations, results, gt, det, amb): the dcltal objects and the reference's lists.
    """
    from dcltal.data.annotations import Annotations, Video

    names = [f"c{c}" for c in range(classes)]
    vids, gt, amb = {}, [], []
    for v in range(videos):
        m = int(rng.integers(0, max_gt + 1))
        start = rng.integers(0, 20, m) * grid
        end = start + rng.integers(0, 8, m) * grid
        label = rng.integers(0, classes, m)
        a_start = rng.integers(0, 20, int(rng.integers(0, 2)) if ambiguous else 0) * grid
        a = np.stack([a_start, a_start + 2 * grid], 1).reshape(-1, 2)
        vid = f"v{v}"
        vids[vid] = Video(vid, "S", None, None, np.stack([start, end], 1).reshape(-1, 2), label.astype(np.int64), a)
        gt += [(vid, int(label[k]), float(start[k]), float(end[k])) for k in range(m)]
        amb += [(vid, float(s), float(e)) for s, e in a]
    results, det = {}, []
    for v in range(videos + extra_videos):
        n = int(rng.integers(0, max_det + 1))
        start = rng.integers(0, 20, n) * grid
        end = start + rng.integers(0, 8, n) * grid
        label = rng.integers(0, classes, n)
        score = rng.integers(0, 4, n) / 4.0
        vid = f"v{v}"
        results[vid] = [{"label": names[label[k]], "score": float(score[k]), "segment": [float(start[k]), float(end[k])]}
                        for k in range(n)]
        det += [(vid, int(label[k]), float(start[k]), float(end[k]), float(score[k])) for k in range(n)]
    return Annotations(vids, names), {"results": results}, gt, det, amb
