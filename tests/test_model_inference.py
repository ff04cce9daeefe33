"""The detector without autograd (inference: chunked D-Net, the region pooling's kernel where it can be
built) gives the outputs of the autograd path and of the per-proposal reference, on a batch whose long
video spans several chunks."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from model_batches import GRID
from reference_model import reference_forward

from dcltal.model import disentangle
from dcltal.model.batch import pack_videos
from dcltal.model.detector import Detector


def long_batch(dim: int, lengths=(2 * disentangle.ROWS_PER_CHUNK + 37, 3), proposals=40, seed=0):
    rng = np.random.default_rng(seed)
    feats, props = [], []
    for t in lengths:
        dur = GRID.duration(t)
        start = rng.uniform(-1.0, dur, proposals)
        length = rng.uniform(0.05, 12.0, proposals)  # up to ~90 snippets: several sparse-table levels
        props.append(np.stack([start, start + length], 1))
        feats.append(torch.from_numpy(np.maximum(rng.normal(size=(t, dim)), 0.0)))
    return pack_videos(feats, props, [GRID] * len(lengths))


@pytest.mark.parametrize("variant", ["dnet", "only_common", "no_common", "baseline", "mlp2"])
def test_inference_matches_autograd_path_and_reference(variant):
    torch.manual_seed(0)
    model = Detector(12, 4, variant=variant, hidden_dim=4, cls_hidden=10, loc_hidden=14, dropout=0.0).double().eval()
    batch = long_batch(12)
    with torch.no_grad():
        fast = model(batch)
    batch.features.requires_grad_(True)
    slow = model(batch)  # the autograd path (whole D-Net, whole table, gathered tiles)
    keep = torch.arange(0, batch.regions.shape[0], 4)  # the reference on every 4th proposal (it is slow)
    sub = type(batch)(batch.features, batch.video_offsets, batch.proposal_video[keep], batch.regions[keep])
    ref = reference_forward(model, sub)
    for name in ("cls_logits", "completeness", "regression", "reconstruction"):
        torch.testing.assert_close(getattr(fast, name), getattr(slow, name).detach(), rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(getattr(fast, name)[keep], getattr(ref, name).detach(), rtol=1e-5, atol=1e-5)


def test_chunked_disentangler_matches_whole():
    torch.manual_seed(1)
    for mode in ("dnet", "only_common", "no_common"):
        net = disentangle.Disentangler(16, 4, mode=mode).double()
        y = torch.randn(3 * disentangle.ROWS_PER_CHUNK + 5, 16, dtype=torch.float64).relu()
        whole = net(y)  # autograd on: one piece
        with torch.no_grad():
            chunked = net(y)
        for a, b in zip(chunked, whole):
            torch.testing.assert_close(a, b.detach(), rtol=1e-12, atol=1e-12)
        if mode == "only_common":
            assert chunked[0] is chunked[1]
