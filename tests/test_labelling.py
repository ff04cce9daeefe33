"""Proposal labelling and per-video sampling (DESIGN §2) against a slow per-proposal reference."""
from __future__ import annotations

import numpy as np
import torch

from dcltal.data.labelling import (BACKGROUND, FOREGROUND, IGNORED, INCOMPLETE, ProposalSampler, label_proposals,
                                   make_targets)
from dcltal.ops.segment_coder import SegmentCoder


def slow_kind(p, gts, fg=0.7, inc=0.3, inc_overlap=0.01, bg=0.01):
    """One proposal's kind and matched ground truth, written out with plain floats."""
    best_t, best_t_j, best_o, best_o_j = -1.0, -1, -1.0, -1
    for j, (s, e) in enumerate(gts):
        inter = max(0.0, min(p[1], e) - max(p[0], s))
        union = (p[1] - p[0]) + (e - s) - inter
        t = inter / union if union > 0 else 0.0
        o = inter / (p[1] - p[0]) if p[1] > p[0] else 0.0
        if t > best_t:
            best_t, best_t_j = t, j
        if o > best_o:
            best_o, best_o_j = o, j
    if best_t > fg:
        return FOREGROUND, best_t_j
    if best_t < inc and best_o > inc_overlap:
        return INCOMPLETE, best_o_j
    if best_t < bg:
        return BACKGROUND, -1
    return IGNORED, -1


def random_video(seed, n=300):
    rng = np.random.default_rng(seed)
    gts = np.array([[10.0, 20.0], [30.0, 34.0], [50.0, 80.0]])
    start = rng.uniform(0, 95, n)
    props = np.stack([start, np.minimum(start + rng.uniform(0.5, 30, n), 100.0)], 1)
    # some near-copies of the ground truth, so that every kind occurs
    near = gts[rng.integers(0, 3, 40)] + rng.normal(0, 0.5, (40, 2))
    return np.concatenate([props, near]), gts, np.array([2, 0, 2])


def test_labels_match_the_slow_reference():
    props, gts, labels = random_video(0)
    lab = label_proposals(props, gts, labels)
    assert len(lab.segments) == len(props) + 3
    np.testing.assert_array_equal(lab.segments[:3], gts)  # ground truths added as proposals
    assert (lab.kind[:3] == FOREGROUND).all() and (lab.gt[:3] == [0, 1, 2]).all()
    want = [slow_kind(p, gts) for p in lab.segments.tolist()]
    np.testing.assert_array_equal(lab.kind, [k for k, _ in want])
    np.testing.assert_array_equal(lab.gt, [j for _, j in want])
    assert {FOREGROUND, INCOMPLETE, BACKGROUND, IGNORED} <= set(lab.kind.tolist())


def test_no_ground_truth_means_background():
    lab = label_proposals(np.array([[0.0, 1.0], [2.0, 5.0]]), np.zeros((0, 2)), np.zeros(0, np.int64))
    assert (lab.kind == BACKGROUND).all()
    s = ProposalSampler((1, 6, 1)).sample(lab, np.random.default_rng(0))
    assert len(s.segments) == 1 and s.labels.tolist() == [0] and s.completeness.tolist() == [-1]


def test_sampler_counts_roles_and_replacement():
    props, gts, labels = random_video(1)
    lab = label_proposals(props, gts, labels)
    n_fg = len(lab.pool(FOREGROUND))
    sampler = ProposalSampler((n_fg + 5, 24, 4), incomplete_positive_overlap=0.7, incomplete_positive_fraction=0.25)
    s = sampler.sample(lab, np.random.default_rng(0))
    fg, inc, bg = n_fg + 5, 24, 4
    assert len(s.segments) == fg + inc + bg
    # short foreground pool: drawn with replacement, every member of the pool a foreground
    assert set(map(tuple, s.segments[:fg].tolist())) <= set(map(tuple, lab.segments[lab.pool(FOREGROUND)].tolist()))
    assert (s.completeness[:fg] == 1).all() and (s.completeness[fg:fg + inc] == 0).all() and (s.completeness[fg + inc:] == -1).all()
    assert s.regression_mask[:fg].all() and not s.regression_mask[fg:].any()
    assert (s.labels[fg + inc:] == 0).all() and (s.action[fg + inc:] == 0).all()
    # foreground and incomplete carry the class (1..C) of their matched ground truth
    for seg, act, gt in zip(s.segments[:fg + inc], s.action[:fg + inc], s.gt_segments[:fg + inc]):
        j = int(np.flatnonzero((gts == gt).all(1))[0])
        assert act == labels[j] + 1
    np.testing.assert_array_equal(s.labels[:fg], s.action[:fg])
    # incomplete positives: only those >= 70% inside their action, at most 25% of the incomplete samples
    pos = np.flatnonzero(s.labels[fg:fg + inc] > 0)
    assert len(pos) <= round(0.25 * inc)
    inside = [(min(e, ge) - max(b, gb)) / (e - b) for (b, e), (gb, ge) in zip(s.segments[fg:fg + inc], s.gt_segments[fg:fg + inc])]
    eligible = [i for i, o in enumerate(inside) if o >= 0.7 - 1e-12]
    assert len(pos) == min(len(eligible), round(0.25 * inc))
    assert set(pos.tolist()) <= set(eligible)


def test_sampling_is_a_function_of_the_generator():
    props, gts, labels = random_video(2)
    lab = label_proposals(props, gts, labels)
    sampler = ProposalSampler((4, 24, 4))
    a = sampler.sample(lab, np.random.default_rng([0, 3, 7]))
    b = sampler.sample(lab, np.random.default_rng([0, 3, 7]))
    c = sampler.sample(lab, np.random.default_rng([0, 4, 7]))
    np.testing.assert_array_equal(a.segments, b.segments)
    assert not np.array_equal(a.segments, c.segments)


def test_targets_code_the_matched_ground_truth():
    props, gts, labels = random_video(3)
    lab = label_proposals(props, gts, labels)
    sampler = ProposalSampler((4, 24, 4))
    samples = [sampler.sample(lab, np.random.default_rng(i)) for i in range(2)]
    coder = SegmentCoder("agnostic", mean=(0.01, -0.02), std=(0.1, 0.2))
    t = make_targets(samples, coder)
    n = sum(len(s.segments) for s in samples)
    assert t.labels.shape == (n,) and t.regression.shape == (n, 2) and t.labels.dtype == torch.int64
    seg = torch.from_numpy(np.concatenate([s.segments for s in samples]))
    decoded = coder.decode(seg[t.regression_mask], t.regression[t.regression_mask].double())
    want = np.concatenate([s.gt_segments for s in samples])[t.regression_mask.numpy()]
    np.testing.assert_allclose(decoded.numpy(), want, atol=1e-4)
    assert (t.regression[~t.regression_mask] == 0).all()
