"""SegmentCoder: both codings against the formulas written out per proposal, round trips, statistics."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dcltal.ops.segment_coder import SegmentCoder


def slow_raw(kind, p, g):
    """One proposal (start, end) and its ground truth -> the two coded numbers, by the formulas."""
    length = p[1] - p[0]
    if kind == "agnostic":
        return [(g[0] - p[0]) / length, (g[1] - p[1]) / length]
    return [((g[0] + g[1]) / 2 - (p[0] + p[1]) / 2) / length, math.log((g[1] - g[0]) / length)]


def random_pairs(n, seed=0):
    rng = np.random.default_rng(seed)
    p0 = rng.uniform(0, 100, n)
    p = np.stack([p0, p0 + rng.uniform(0.5, 20, n)], 1)
    g0 = p0 + rng.normal(0, 2, n)
    g = np.stack([g0, g0 + rng.uniform(0.5, 20, n)], 1)
    return torch.from_numpy(p), torch.from_numpy(g)


@pytest.mark.parametrize("kind", ["agnostic", "class_specific"])
def test_encode_matches_formulas_and_normalises(kind):
    p, g = random_pairs(50)
    coder = SegmentCoder(kind, mean=(0.1, -0.2), std=(0.5, 2.0))
    want = np.array([slow_raw(kind, a, b) for a, b in zip(p.tolist(), g.tolist())])
    want = (want - [0.1, -0.2]) / [0.5, 2.0]
    np.testing.assert_allclose(coder.encode(p, g).numpy(), want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", ["agnostic", "class_specific"])
def test_round_trip_float64_and_float32(kind):
    p, g = random_pairs(200, seed=1)
    coder = SegmentCoder.fit(kind, p, g)
    np.testing.assert_allclose(coder.decode(p, coder.encode(p, g)).numpy(), g.numpy(), rtol=0, atol=1e-9)
    back = coder.decode(p.float(), coder.encode(p, g).float())
    assert back.dtype == torch.float32
    np.testing.assert_allclose(back.numpy(), g.numpy(), rtol=0, atol=1e-3)


@given(st.lists(st.tuples(st.floats(0, 1e3), st.floats(0.01, 1e2), st.floats(-50, 50), st.floats(0.01, 1e2)),
                min_size=1, max_size=20),
       st.sampled_from(["agnostic", "class_specific"]))
@settings(max_examples=60, deadline=None)
def test_round_trip_property(rows, kind):
    p = torch.tensor([[s, s + l] for s, l, _, _ in rows], dtype=torch.float64)
    g = torch.tensor([[s + d, s + d + m] for s, _, d, m in rows], dtype=torch.float64)
    coder = SegmentCoder(kind, mean=(0.3, -0.1), std=(0.7, 1.3))
    np.testing.assert_allclose(coder.decode(p, coder.encode(p, g)).numpy(), g.numpy(), rtol=1e-9, atol=1e-6)


def test_fit_statistics_standardise_the_training_codes():
    p, g = random_pairs(300, seed=2)
    for kind in ("agnostic", "class_specific"):
        coder = SegmentCoder.fit(kind, p, g)
        codes = coder.encode(p, g)
        np.testing.assert_allclose(codes.mean(0).numpy(), 0, atol=1e-9)
        np.testing.assert_allclose(codes.std(0, unbiased=False).numpy(), 1, atol=1e-9)
        rebuilt = SegmentCoder(**coder.state())  # the checkpoint's entry
        torch.testing.assert_close(rebuilt.encode(p, g), codes)


def test_degenerate_inputs():
    one = torch.tensor([[1.0, 2.0]])
    assert SegmentCoder.fit("agnostic", one, one).state() == {"kind": "agnostic", "mean": [0, 0], "std": [1, 1]}
    same = torch.tensor([[0.0, 1.0], [2.0, 4.0]])
    assert min(SegmentCoder.fit("agnostic", same, same).std) > 0  # constant codes: std floored, no division by 0
    assert torch.isfinite(SegmentCoder("class_specific").encode(torch.tensor([[3.0, 3.0]]), one)).all()
    with pytest.raises(ValueError):
        SegmentCoder("centre")
