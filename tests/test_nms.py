"""NMS and Soft-NMS against slow, obvious loops over Python lists."""
from __future__ import annotations

import math

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dcltal.data.segments import pairwise_tiou
from dcltal.ops.nms import batched_nms, batched_soft_nms, nms, segment_iou, soft_nms


def _iou(a, b):
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = (a[1] - a[0]) + (b[1] - b[0]) - inter
    if union <= 0:
        return 1.0 if a == b else 0.0
    return inter / union


def slow_nms(segs, scores, thr, labels=None):
    labels = labels or [0] * len(segs)
    order = sorted(range(len(segs)), key=lambda i: (-scores[i], i))
    keep = []
    for i in order:
        if all(labels[k] != labels[i] or _iou(segs[k], segs[i]) <= thr for k in keep):
            keep.append(i)
    return keep


def slow_soft_nms(segs, scores, sigma, threshold, labels=None):
    labels = labels or [0] * len(segs)
    current = dict(enumerate(scores))
    keep, kept = [], []
    while current:
        best = max(current, key=lambda i: (current[i], -i))
        keep.append(best)
        kept.append(current.pop(best))
        for i in list(current):
            if labels[i] == labels[best]:
                current[i] *= math.exp(-_iou(segs[i], segs[best]) ** 2 / sigma)
            if current[i] < threshold:
                del current[i]
    return keep, kept


def _random(seed, n, classes=1):
    rng = np.random.default_rng(seed)
    start = rng.uniform(0, 50, n)
    segs = np.stack([start, start + rng.uniform(0.5, 20, n)], 1)
    # a coarse score grid makes ties, whose order the slow loop fixes (input order first)
    scores = np.round(rng.uniform(0, 1, n), 1)
    labels = rng.integers(0, classes, n)
    return segs, scores, labels


def test_segment_iou_matches_numpy_tiou():
    segs, _, _ = _random(0, 30)
    segs[3] = segs[4] = [5.0, 5.0]  # coinciding zero-length segments
    got = segment_iou(torch.tensor(segs), torch.tensor(segs)).numpy()
    np.testing.assert_allclose(got, pairwise_tiou(segs, segs), atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(0, 40), thr=st.sampled_from([0.1, 0.35, 0.5, 0.9]))
def test_nms_matches_slow_loop(seed, n, thr):
    segs, scores, _ = _random(seed, n)
    keep = nms(torch.tensor(segs), torch.tensor(scores), thr)
    assert keep.tolist() == slow_nms(segs.tolist(), scores.tolist(), thr)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(0, 40))
def test_batched_nms_is_per_class(seed, n):
    segs, scores, labels = _random(seed, n, classes=3)
    keep = batched_nms(torch.tensor(segs, dtype=torch.float32), torch.tensor(scores), torch.tensor(labels), 0.35)
    assert keep.tolist() == slow_nms(segs.astype(np.float32).tolist(), scores.tolist(), 0.35, labels.tolist())


def test_nms_max_keep_is_a_prefix():
    segs, scores, _ = _random(1, 50)
    full = nms(torch.tensor(segs), torch.tensor(scores), 0.5)
    assert nms(torch.tensor(segs), torch.tensor(scores), 0.5, max_keep=3).tolist() == full[:3].tolist()


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(0, 30), sigma=st.sampled_from([0.2, 0.5, 1.0]))
def test_soft_nms_matches_slow_loop(seed, n, sigma):
    segs, scores, labels = _random(seed, n, classes=2)
    # distinct scores: the Gaussian decay makes exact ties depend on float rounding order
    scores = scores + np.arange(n) * 1e-4
    keep, kept = batched_soft_nms(torch.tensor(segs), torch.tensor(scores), torch.tensor(labels), sigma, 1e-3)
    want_keep, want_scores = slow_soft_nms(segs.tolist(), scores.tolist(), sigma, 1e-3, labels.tolist())
    assert keep.tolist() == want_keep
    np.testing.assert_allclose(kept.numpy(), want_scores, rtol=1e-9)


def test_soft_nms_decays_overlaps_and_keeps_far_ones():
    segs = torch.tensor([[0.0, 10.0], [1.0, 10.0], [50.0, 60.0]])
    keep, kept = soft_nms(segs, torch.tensor([0.9, 0.8, 0.7]), sigma=0.5)
    assert keep.tolist() == [0, 2, 1]
    assert kept[1] == 0.7  # disjoint: untouched
    assert math.isclose(float(kept[2]), 0.8 * math.exp(-(0.9**2) / 0.5), rel_tol=1e-6)
