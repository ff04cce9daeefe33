"""Training targets of the BMN proposal network (BMN §3.5, "Training of BMN": label assignment).

Everything is in window locations: location ``t`` of a window of ``T`` stands for the time the
engine maps it to (:mod:`dcltal.engine.proposals.task`), and ground-truth segments arrive as
``[M, 2]`` continuous locations (they may reach outside the window).

- Boundary labels ``G_S``, ``G_E`` [T]: each ground truth's start (end) gets a region of
  ``boundary_width`` locations centred on it; location ``t`` stands for ``[t - 1/2, t + 1/2]`` and
  its label is the largest fraction of that interval covered by a start (end) region (the
  *intersection over anchor* of BMN / BSN). The BMN release uses regions three locations wide.
- Confidence map labels ``G_C`` [D, T]: entry ``(k, i)`` is the largest tIoU of the proposal
  ``[i, i + k + 1]`` with any ground truth (the layout of :mod:`dcltal.model.bmn`).
"""
from __future__ import annotations

import numpy as np

from dcltal.data.segments import pairwise_tiou


def boundary_labels(gt: np.ndarray, temporal_scale: int, boundary_width: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """``gt`` [M, 2] locations -> (G_S [T], G_E [T]) in [0, 1], float32."""
    gt = np.asarray(gt, dtype=np.float64).reshape(-1, 2)
    t = np.arange(temporal_scale, dtype=np.float64)
    anchors = np.stack([t - 0.5, t + 0.5], axis=1)  # [T, 2], each one location long

    def cover(points: np.ndarray) -> np.ndarray:
        if len(points) == 0:
            return np.zeros(temporal_scale, dtype=np.float32)
        lo, hi = points - boundary_width / 2, points + boundary_width / 2  # [M] regions
        inter = np.clip(np.minimum(anchors[:, 1:2], hi[None]) - np.maximum(anchors[:, 0:1], lo[None]), 0, None)
        return inter.max(axis=1).astype(np.float32)  # [T], anchor length 1: intersection = fraction

    return cover(gt[:, 0]), cover(gt[:, 1])


def confidence_map_labels(gt: np.ndarray, temporal_scale: int, max_duration: int) -> np.ndarray:
    """``gt`` [M, 2] locations -> G_C [D, T] float32: best tIoU of each map entry's proposal."""
    gt = np.asarray(gt, dtype=np.float64).reshape(-1, 2)
    if len(gt) == 0:
        return np.zeros((max_duration, temporal_scale), dtype=np.float32)
    k, i = np.meshgrid(np.arange(max_duration), np.arange(temporal_scale), indexing="ij")  # [D, T] each
    proposals = np.stack([i, i + k + 1], axis=-1).reshape(-1, 2).astype(np.float64)
    return pairwise_tiou(proposals, gt).max(axis=1).reshape(max_duration, temporal_scale).astype(np.float32)
