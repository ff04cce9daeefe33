"""Stream fusion and video-level score fusion against plain loops."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dcltal.engine.detection.fusion import (HELD_OUT, choose_weights, fuse_streams, fuse_video_scores, resolve_weights,
                                          weight_candidates)
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
    assert torch.equal(fuse_streams({"flow": b}, {"rgb": 1.0, "flow": 0.0}), b)  # held_out's 0: alone, it still counts
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


def test_weight_candidates_cover_the_shares_most_balanced_first():
    cands = weight_candidates(["rgb", "flow"])
    assert sorted(c["rgb"] for c in cands) == [i / 10 for i in range(11)]
    assert all(abs(c["rgb"] + c["flow"] - 1) < 1e-9 for c in cands)
    assert [c["rgb"] for c in cands[:5]] == [0.5, 0.4, 0.6, 0.3, 0.7]  # mirrored shares: the lower first, every pair
    three = weight_candidates(["a", "b", "c"])
    assert three[0] == {"a": 1.0, "b": 1.0, "c": 1.0} and {"a": 0.0, "b": 1.0, "c": 0.0} in three
    assert weight_candidates(["rgb"]) == [{"rgb": 1.0}]


def test_choose_weights_takes_the_best_score_and_the_balanced_one_of_equals():
    chosen, score = choose_weights(["rgb", "flow"], lambda w: -abs(w["rgb"] - 0.8), lambda x: x)
    assert chosen == {"rgb": 0.8, "flow": pytest.approx(0.2)} and score == pytest.approx(0)
    flat, _ = choose_weights(["rgb", "flow"], lambda w: 1.0, lambda x: x)
    assert flat == {"rgb": 0.5, "flow": 0.5}


def test_resolve_weights_fixed_held_out_and_the_fallback(caplog):
    assert resolve_weights({"rgb": 5, "flow": 6}, {"rgb": 1.0, "flow": 0.0}, ["rgb", "flow"], "a.pt") == {"rgb": 5, "flow": 6}
    assert resolve_weights(HELD_OUT, {"rgb": 0.7, "flow": 0.3}, ["rgb", "flow"], "a.pt") == {"rgb": 0.7, "flow": 0.3}
    # a checkpoint trained with fixed weights (or by an older dcltal) keeps them
    assert resolve_weights(HELD_OUT, None, ["rgb", "flow"], "fixed.pt", {"rgb": 5, "flow": 6}) == {"rgb": 5, "flow": 6}
    with caplog.at_level("WARNING"):
        assert resolve_weights(HELD_OUT, None, ["rgb", "flow"], "old.pt", HELD_OUT) == {"rgb": 1.0, "flow": 1.0}
        resolve_weights(HELD_OUT, None, ["rgb", "flow"], "old.pt")
    assert sum("old.pt" in r.getMessage() for r in caplog.records) == 1  # once a checkpoint


def test_fuse_streams_refuses_unresolved_held_out():
    with pytest.raises(UserError, match="held_out"):
        fuse_streams({"rgb": torch.ones(2)}, HELD_OUT)
