"""BSN-like proposals for a synthetic video: jittered around the ground truth plus background ones.

A proposal generator such as BSN returns a few proposals near each action, of varying quality,
many overlapping each other, and a long tail of proposals on background, with a confidence that
rises with the overlap. Here: every instance gets ``k`` proposals whose start and end move by
Gaussian noise of a per-proposal scale (the first one tight, so recall at tIoU 0.5 is high but not
perfect), then background proposals anywhere in the video; every length is held to 10-300 frames;
the score is ``0.8 * tIoU + 0.15 + N(0, SCORE_SD)`` clipped to [0.01, 0.99], with tIoU the best
overlap with an annotated instance. Rows come out sorted by score, as BSN writes them.
"""
from __future__ import annotations

import numpy as np

from dcltal.data.grid import TimeGrid
from dcltal.data.segments import pairwise_tiou

COUNT_RANGE = (100, 200)  # proposals a video
SHARE_NEAR_GT = 0.6  # target share of proposals around instances
PER_INSTANCE_RANGE = (2, 10)
JITTER_RANGE = (0.08, 0.6)  # boundary noise, in units of the instance's length
FIRST_JITTER = 0.2
MIN_BACKGROUND = 20
LENGTH_FRAMES = (10, 300)
SCORE_SD = 0.1


def draw_proposals(rng: np.random.Generator, segments: np.ndarray, annotated: np.ndarray, duration: float,
                   grid: TimeGrid) -> np.ndarray:
    """[N, 3] (start s, end s, score) for a video whose actions lie at ``segments`` [M, 2] in its
    features and were annotated at ``annotated`` [M, 2]: a generator sees the features, its
    confidence learned the annotations."""
    n_gt = len(segments)
    total = int(rng.integers(COUNT_RANGE[0], COUNT_RANGE[1] + 1))
    k = int(np.clip(round(SHARE_NEAR_GT * total / max(n_gt, 1)), *PER_INSTANCE_RANGE))
    # near the ground truth: [M, k] draws, the first column tight
    gt = np.repeat(segments, k, axis=0)  # [M*k, 2]
    scale = rng.uniform(*JITTER_RANGE, (n_gt, k))
    scale[:, 0] = FIRST_JITTER
    scale = scale.reshape(-1, 1) * (gt[:, 1:] - gt[:, :1])
    near = gt + scale * rng.standard_normal(gt.shape)
    centre, length = near.mean(axis=1), np.abs(near[:, 1] - near[:, 0])
    # background: anywhere, log-uniform lengths over the allowed range
    n_bg = max(total - len(near), MIN_BACKGROUND)
    lo, hi = np.log(np.array(LENGTH_FRAMES) / grid.fps)
    bg_length = np.exp(rng.uniform(lo, hi, n_bg))
    bg_centre = rng.uniform(0, duration, n_bg)
    centre = np.concatenate([centre, bg_centre])
    length = np.clip(np.concatenate([length, bg_length]), *(np.array(LENGTH_FRAMES) / grid.fps))
    length = np.minimum(length, duration)
    # shift (not clip) into the video, so that no proposal falls below the shortest length
    start = np.clip(centre - length / 2, 0, duration - length)
    props = np.column_stack([start, np.minimum(start + length, duration)])
    best = pairwise_tiou(props, annotated).max(axis=1) if n_gt else np.zeros(len(props))
    score = np.clip(0.8 * best + 0.15 + SCORE_SD * rng.standard_normal(len(props)), 0.01, 0.99)
    order = np.argsort(-score, kind="stable")
    return np.column_stack([props, score])[order]
