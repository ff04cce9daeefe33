"""infer.proposal_score: multiply (the paper's Table 6 setting): each proposal's own score times its
detection scores, before the top-k pairs and NMS; hand-made cases."""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pytest
import torch

from dcltal.config import InferConfig, load_config
from dcltal.data.grid import TimeGrid
from dcltal.engine.detection.fusion import fuse_proposal_scores
from dcltal.engine.detection.inference import video_detections
from dcltal.errors import UserError

GRID = TimeGrid(fps=30.0, stride=4, window=16)
CLASSES = ["jump", "run"]


@dataclass
class Record:
    id: str
    grid: TimeGrid
    duration: float | None
    features: dict
    proposals: np.ndarray


# three proposals that do not overlap, so NMS keeps every (proposal, class) pair
SEGMENTS = [[0.0, 2.0], [3.0, 5.0], [6.0, 8.0]]
DETECTION = [[0.9, 0.1], [0.5, 0.2], [0.3, 0.8]]  # [N, C] fused detection scores (Eq. 16)
PROPOSAL = [0.1, 1.0, 0.5]  # [N] the generator's own scores


def _video(with_scores=True):
    props = np.array([s + [p] for s, p in zip(SEGMENTS, PROPOSAL)]) if with_scores else np.array(SEGMENTS)
    return Record("v", GRID, 10.0, {}, props)


def _predictions():
    return {"rgb": (torch.tensor(DETECTION, dtype=torch.float64), torch.tensor(SEGMENTS, dtype=torch.float64))}


def _pairs(dets):
    return [(d["label"], d["segment"][0], round(d["score"], 12)) for d in dets]


def test_fuse_proposal_scores_by_hand():
    got = fuse_proposal_scores(torch.tensor(DETECTION), torch.tensor(PROPOSAL, dtype=torch.float64))
    want = [[0.09, 0.01], [0.5, 0.2], [0.15, 0.4]]
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-6)
    assert got.dtype == torch.float32  # the detection scores' dtype


def test_multiply_reorders_detections_before_top_k():
    base = InferConfig(stream_weights={"rgb": 1.0}, video_scores=None)
    plain = video_detections(_video(), _predictions(), base, CLASSES)
    assert _pairs(plain)[:3] == [("jump", 0.0, 0.9), ("run", 6.0, 0.8), ("jump", 3.0, 0.5)]

    multiplied = video_detections(_video(), _predictions(), replace(base, proposal_score="multiply"), CLASSES)
    # by hand: 0.9*0.1, 0.1*0.1, 0.5*1, 0.2*1, 0.3*0.5, 0.8*0.5, sorted
    assert _pairs(multiplied) == [("jump", 3.0, 0.5), ("run", 6.0, 0.4), ("run", 3.0, 0.2), ("jump", 6.0, 0.15),
                                  ("jump", 0.0, 0.09), ("run", 0.0, 0.01)]

    # top_k counts pairs after the product: the one pair kept is the second proposal's
    one = replace(base, proposal_score="multiply", top_k=1)
    assert _pairs(video_detections(_video(), _predictions(), one, CLASSES)) == [("jump", 3.0, 0.5)]


def test_multiply_with_video_scores_is_the_product_of_both():
    cfg = InferConfig(stream_weights={"rgb": 1.0}, video_top_k=1, proposal_score="multiply")
    dets = video_detections(_video(), _predictions(), cfg, CLASSES, {"v": np.array([0.2, 0.6])})
    # only "run" survives the video's top-1; scores 0.1*0.1*0.6, 0.2*1*0.6, 0.8*0.5*0.6
    assert _pairs(dets) == [("run", 6.0, 0.24), ("run", 3.0, 0.12), ("run", 0.0, 0.006)]


def test_multiply_needs_proposal_scores_and_accepts_none():
    cfg = InferConfig(stream_weights={"rgb": 1.0}, video_scores=None, proposal_score="multiply")
    with pytest.raises(UserError, match="infer.proposal_score"):
        video_detections(_video(with_scores=False), _predictions(), cfg, CLASSES)
    empty = Record("e", GRID, 10.0, {}, np.zeros((0, 2)))
    none = {"rgb": (torch.zeros(0, 2, dtype=torch.float64), torch.zeros(0, 2, dtype=torch.float64))}
    assert video_detections(empty, none, cfg, CLASSES) == []


def test_config_key_defaults_off_and_rejects_unknown_values():
    assert load_config(None).infer.proposal_score == "none"
    assert load_config(None, ["infer.proposal_score=multiply"]).infer.proposal_score == "multiply"
    with pytest.raises(UserError, match="infer.proposal_score"):
        load_config(None, ["infer.proposal_score=add"])
