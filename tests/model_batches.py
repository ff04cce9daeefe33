"""Small random packed batches with the edge cases the model must handle (shared by the model tests)."""
from __future__ import annotations

import numpy as np
import torch

from dcltal.data.grid import TimeGrid
from dcltal.model.batch import pack_videos
from dcltal.data.labelling import Targets

GRID = TimeGrid(fps=30.0, stride=4, window=16)


def edge_case_batch(dim: int, seed: int = 0, lengths=(1, 9, 26), dtype=torch.float64):
    """Videos of ``lengths`` snippets packed end to end; per video: a one-snippet proposal, proposals
    at the first and the last snippet (extended regions clipped away at the edges), one longer than
    the video, and random ones."""
    rng = np.random.default_rng(seed)
    feats, props, grids = [], [], []
    for t in lengths:
        dur = GRID.duration(t)
        c0, c_last = GRID.to_seconds(0), GRID.to_seconds(t - 1)
        rows = [
            [c0 - 0.01, c0 + 0.01],  # one snippet, the first
            [c_last - 0.01, c_last + 0.01],  # one snippet, the last
            [0.0, 0.3 * dur],  # at the start: the left extended region is clipped away
            [0.7 * dur, dur],  # at the end: the right one is
            [-2.0, dur + 3.0],  # longer than the video
        ]
        for _ in range(4):
            s, e = np.sort(rng.uniform(0, dur, 2))
            rows.append([s, e])
        feats.append(torch.from_numpy(rng.normal(size=(t, dim))).to(dtype))
        props.append(np.array(rows))
        grids.append(GRID)
    return pack_videos(feats, props, grids)


def random_targets(batch, num_classes: int, seed: int = 0) -> Targets:
    """Targets of every kind: background, foreground with regression, incomplete, ignored rows."""
    g = torch.Generator().manual_seed(seed)
    n = batch.regions.shape[0]
    kind = torch.randint(0, 4, (n,), generator=g)  # 0 ignored, 1 foreground, 2 incomplete, 3 background
    action = torch.randint(1, num_classes + 1, (n,), generator=g)
    labels = torch.where(kind == 1, action, torch.where(kind == 3, 0, -1))
    labels = torch.where((kind == 2) & (torch.rand(n, generator=g) < 0.3), action, labels)  # some incomplete as positives
    completeness = torch.where(kind == 1, 1, torch.where(kind == 2, 0, -1))
    action = torch.where((kind == 1) | (kind == 2), action, 0)
    return Targets(
        labels=labels.long(),
        completeness=completeness.long(),
        action=action.long(),
        regression=torch.randn(n, 2, generator=g, dtype=torch.float64).to(batch.features.dtype),
        regression_mask=kind == 1,
    )
