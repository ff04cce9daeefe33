"""Stream fusion and video-level score fusion against plain loops."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dcltal.engine.detection.fusion import fuse_streams, fuse_video_scores
from dcltal.errors import UserError


def test_fuse_streams_is_the_weighted_average():
    rng = np.random.default_rng(0)
    rgb, flow = rng.uniform(size=(7, 3)), rng.uniform(size=(7, 3))
    got = fuse_streams({"rgb": torch.tensor(rgb), "flow": torch.tensor(flow)}, {"rgb": 5.0, "flow": 6.0})
    want = np.array([[(5 * rgb[i, j] + 6 * flow[i, j]) / 11 for j in range(3)] for i in range(7)])
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)


def test_fuse_streams_boundaries_and_single_stream():
    b = torch.tensor([[1.0, 4.0], [2.0, 3.0]])
    assert torch.equal(fuse_streams({"rgb": b}, {"rgb": 5.0, "flow": 6.0}), b)
    fused = fuse_streams({"rgb": b, "flow": b + 11.0}, {"rgb": 5.0, "flow": 6.0})
    torch.testing.assert_close(fused, b + 6.0)


def test_fuse_streams_names_a_missing_weight():
    with pytest.raises(UserError, match="infer.stream_weights.*'depth'"):
        fuse_streams({"depth": torch.ones(2)}, {"rgb": 5.0})


@pytest.mark.parametrize("top_k", [None, 0, 1, 2, 5])
def test_fuse_video_scores_keeps_top_classes(top_k):
    rng = np.random.default_rng(1)
    scores, video = rng.uniform(size=(4, 5)), np.array([0.1, 0.9, 0.3, 0.7, 0.2])
    got = fuse_video_scores(torch.tensor(scores), torch.tensor(video), top_k).numpy()
    ranked = sorted(range(5), key=lambda c: -video[c])
    kept = set(ranked[: top_k]) if top_k else set(range(5))
    want = [[scores[i, c] * video[c] if c in kept else 0.0 for c in range(5)] for i in range(4)]
    np.testing.assert_allclose(got, want, rtol=1e-12)
