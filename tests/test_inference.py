"""detect(): the paper's inference order against a slow per-proposal, per-class reference.

A small stand-in detector (mean of the proposal's snippets -> linear heads) keeps this test
independent of the model's internals; the test of the real Detector is in test_predictor.py.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pytest
import torch
from torch import nn

from dcltal.config import InferConfig
from dcltal.data.grid import TimeGrid
from dcltal.engine.detection.inference import detect
from dcltal.model.split_detector import SplitDetector
from dcltal.model.batch import region_ranges

C, D = 3, 6
GRID = TimeGrid(fps=30.0, stride=4, window=16)
CLASSES = ["jump", "run", "swim"]


@dataclass
class Out:
    cls_logits: torch.Tensor
    completeness: torch.Tensor
    regression: torch.Tensor
    reconstruction: torch.Tensor = field(default_factory=lambda: torch.zeros(0))


class MeanDetector(nn.Module):
    def __init__(self, seed: int, class_specific: bool = False):
        super().__init__()
        torch.manual_seed(seed)
        self.cls, self.com = nn.Linear(D, C + 1), nn.Linear(D, C)
        self.reg = nn.Linear(D, 2 * C if class_specific else 2)
        self.class_specific = class_specific

    def forward(self, batch, cls_feature="cls", loc_feature="loc", reconstruction=True):
        pooled = torch.stack([batch.features[lo:hi].mean(0) for lo, hi in batch.regions[:, 0].tolist()])
        reg = 0.1 * self.reg(pooled)
        return Out(self.cls(pooled), self.com(pooled), reg.reshape(-1, C, 2) if self.class_specific else reg)

    def scores(self, out):
        return torch.softmax(out.cls_logits, dim=1)[:, 1:] * torch.exp(out.completeness)


class ShiftCoder:
    """centre shift and log length, in units of the proposal's length."""

    def decode(self, proposals, deltas):
        length = proposals[:, 1] - proposals[:, 0]
        centre = (proposals[:, 0] + proposals[:, 1]) / 2 + deltas[:, 0] * length
        half = length * torch.exp(deltas[:, 1]) / 2
        return torch.stack([centre - half, centre + half], dim=1)


@dataclass
class Record:
    id: str
    grid: TimeGrid
    duration: float | None
    features: dict
    proposals: np.ndarray


PAPER = {"rgb": 5.0, "flow": 6.0}  # fixed weights (the default, held_out, needs a trained checkpoint)

def _videos(n=4, seed=0):
    rng = np.random.default_rng(seed)
    videos = []
    for v in range(n):
        t = int(rng.integers(30, 60))
        duration = GRID.duration(t)
        start = rng.uniform(-1, duration - 2, 25)
        props = np.stack([start, start + rng.uniform(0.5, 6, 25), rng.uniform(size=25)], 1)
        feats = {s: rng.normal(size=(t, D)).astype(np.float32) for s in ("rgb", "flow")}
        videos.append(Record(f"v{v}", GRID, duration if v % 2 else None, feats, props))
    return videos


def _slow_iou(a, b):
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = (a[1] - a[0]) + (b[1] - b[0]) - inter
    return inter / union if union > 0 else float(a == b)


def _reference(models, video, cfg, video_scores):
    """Every step as a loop over proposals and classes, in plain Python floats."""
    t = video.features["rgb"].shape[0]
    props = video.proposals[:, :2]
    ranges = region_ranges(props, video.grid, t)[:, 0]
    per_stream = {}
    for s, model in models.items():
        m = model.loc_model if isinstance(model, SplitDetector) else model
        c_m = model.cls_model if isinstance(model, SplitDetector) else model
        rows = []
        for (lo, hi), (ps, pe) in zip(ranges, props):
            x = torch.tensor(video.features[s][lo:hi].mean(0))
            probs = torch.softmax(c_m.cls(x), 0).tolist()
            com = m.com(x).tolist()
            reg = (0.1 * m.reg(x)).tolist()
            sc, bd = [], []
            for c in range(C):
                dc, dl = (reg[2 * c], reg[2 * c + 1]) if m.class_specific else reg
                length = pe - ps
                centre = (ps + pe) / 2 + dc * length
                half = length * math.exp(dl) / 2
                sc.append(probs[c + 1] * math.exp(com[c]))
                bd.append((centre - half, centre + half))
            rows.append((sc, bd))
        per_stream[s] = rows
    w = {s: cfg.stream_weights[s] for s in models}
    total = sum(w.values())
    duration = video.duration if video.duration is not None else GRID.duration(t)
    top_classes = set(sorted(range(C), key=lambda c: -video_scores[c])[: cfg.video_top_k]) if video_scores is not None else None
    pairs = []
    for i in range(len(props)):
        for c in range(C):
            score = sum(w[s] * per_stream[s][i][0][c] for s in w) / total
            bound = [sum(w[s] * per_stream[s][i][1][c][k] for s in w) / total for k in (0, 1)]
            if top_classes is not None:
                score = score * video_scores[c] if c in top_classes else 0.0
            pairs.append((score, i, c, bound))
    pairs = [p for p in sorted(pairs, key=lambda p: -p[0])[: cfg.top_k] if p[0] > 0]
    kept = []
    for score, i, c, bound in pairs:  # hard NMS per class
        on = bound if cfg.order == "fuse_first" else list(props[i])
        if all(k[2] != c or _slow_iou(k[4], on) <= cfg.nms_iou for k in kept):
            kept.append((score, i, c, bound, on))
    out = []
    for score, _, c, bound, _ in kept[: cfg.max_detections]:
        s, e = sorted(bound)
        out.append((CLASSES[c], score, min(max(s, 0.0), duration), min(max(e, 0.0), duration)))
    return out


def _as_tuples(dets):
    return [(d["label"], d["score"], *d["segment"]) for d in dets]


def _assert_same(got, want):
    assert [g[0] for g in got] == [w[0] for w in want]
    np.testing.assert_allclose([g[1:] for g in got], [w[1:] for w in want], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("order", ["fuse_first", "nms_first"])
@pytest.mark.parametrize("class_specific", [False, True])
@pytest.mark.parametrize("with_video_scores", [False, True])
def test_detect_matches_slow_reference(order, class_specific, with_video_scores):
    videos = _videos()
    models = {"rgb": MeanDetector(1, class_specific), "flow": MeanDetector(2, class_specific)}
    cfg = InferConfig(stream_weights=PAPER, order=order, top_k=40, max_detections=12, nms_iou=0.35, video_top_k=2)
    rng = np.random.default_rng(3)
    vscores = {v.id: rng.uniform(size=C) for v in videos} if with_video_scores else None
    res = detect(models, videos, ShiftCoder(), cfg, CLASSES, vscores, videos_per_batch=3)
    assert set(res) == {"version", "results", "external_data"}
    assert set(res["results"]) == {v.id for v in videos}
    for v in videos:
        want = _reference(models, v, cfg, None if vscores is None else vscores[v.id])
        _assert_same(_as_tuples(res["results"][v.id]), want)
        if with_video_scores:
            assert len({d["label"] for d in res["results"][v.id]}) <= 2


def test_split_detector_takes_classification_from_one_model():
    videos = _videos(2)
    a, b = MeanDetector(1), MeanDetector(2)
    split = {"rgb": SplitDetector(a, b)}
    cfg = InferConfig(stream_weights={"rgb": 1.0}, top_k=30, max_detections=10)
    res = detect(split, videos, ShiftCoder(), cfg, CLASSES)
    for v in videos:
        _assert_same(_as_tuples(res["results"][v.id]), _reference(split, v, cfg, None))


def test_soft_nms_keeps_more_and_stays_sorted():
    videos = _videos(2)
    models = {"rgb": MeanDetector(1), "flow": MeanDetector(2)}
    hard = detect(models, videos, ShiftCoder(), InferConfig(stream_weights=PAPER, top_k=60, max_detections=60), CLASSES)
    soft = detect(models, videos, ShiftCoder(), InferConfig(stream_weights=PAPER, nms="soft", top_k=60, max_detections=60), CLASSES)
    for v in videos:
        s = [d["score"] for d in soft["results"][v.id]]
        assert s == sorted(s, reverse=True)
        assert len(s) >= len(hard["results"][v.id])
        # the best detection is never decayed
        assert math.isclose(s[0], hard["results"][v.id][0]["score"], rel_tol=1e-6)


def test_detect_restores_training_mode_and_handles_no_proposals():
    videos = _videos(2)
    videos[1].proposals = np.zeros((0, 3))
    models = {"rgb": MeanDetector(1), "flow": MeanDetector(2)}
    models["rgb"].train()
    res = detect(models, videos, ShiftCoder(), InferConfig(stream_weights=PAPER), CLASSES)
    assert models["rgb"].training and res["results"]["v1"] == []
