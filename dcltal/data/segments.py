"""Temporal segments as numpy arrays ``[N, 2]`` of (start, end): overlaps used by labelling and eval."""
from __future__ import annotations

import numpy as np


def pairwise_tiou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[N, M] temporal IoU of every segment of ``a`` [N, 2] with every segment of ``b`` [M, 2].

    Two zero-length segments score 1 where they coincide and 0 elsewhere (DESIGN §5).
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1, 2)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 2)
    inter = np.clip(np.minimum(a[:, None, 1], b[None, :, 1]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    union = (a[:, None, 1] - a[:, None, 0]) + (b[None, :, 1] - b[None, :, 0]) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / union, 0.0)
    same_point = (union <= 0) & (a[:, None, 0] == b[None, :, 0]) & (a[:, None, 1] == b[None, :, 1])
    return np.where(same_point, 1.0, iou)


def overlap_fraction(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[N, M] fraction of each segment of ``a`` that lies inside each segment of ``b``."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 2)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 2)
    inter = np.clip(np.minimum(a[:, None, 1], b[None, :, 1]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    length = (a[:, 1] - a[:, 0])[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(length > 0, inter / length, 0.0)
