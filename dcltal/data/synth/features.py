"""Snippet features of a synthetic video: a sum of pattern vectors with phase-dependent weights, plus noise.

Each snippet ``t`` sees frames ``[t*stride, t*stride + window)``; every component of the model is
active on an interval of time, and its weight in a snippet is the fraction of the snippet's window
that the interval covers (a snippet feature averages its frames, as I3D's does). With ``W`` the
``[T, K]`` weights and ``P_s`` the ``[K, D]`` pattern bank of stream ``s``::

    x_s(t) = softplus( sum_k W[t, k] * w_s(kind(k)) * P_s[k]  +  style_s  +  NOISE_SD * eps_t  +  DRIFT_SD * drift_t )

``w_s`` is the stream's emphasis on each kind of component (table ``STREAM_WEIGHTS``), ``P_s[k]``
a fixed random direction per component and stream (entries N(0, 1)), ``style_s`` a per-video
nuisance offset, ``eps_t`` white Gaussian noise and ``drift_t`` slow Gaussian noise (a running
mean over about 1 s): real snippet features are correlated in time, so pooling must not remove
all of the noise, while one snippet stays readable for max-pooling and attention (Eq. 6-7). The softplus makes the features non-negative
like I3D's (post-ReLU) features, which the decoder of the disentanglement net (Eq. 2, a ReLU)
can reconstruct. docs/synthetic.md explains what each component is for.
"""
from __future__ import annotations

import numpy as np

from dcltal.data.synth.layout import GRID, VideoLayout, num_pairs, pair_of

KINDS = ("scene", "take_off", "run_up", "action", "start", "end")
STREAM_WEIGHTS = {  # kind: (rgb, flow). RGB: appearance and scene; Flow: motion and boundaries
    "scene": (1.0, 0.25),
    "take_off": (1.2, 0.8),
    "run_up": (0.7, 1.0),
    "action": (0.4, 0.8),
    "start": (0.3, 1.0),
    "end": (0.3, 1.0),
}
STREAMS = ("rgb", "flow")
BOUNDARY_HALF_S = 0.25  # start and end cues last from 0.25 s before to 0.25 s after the boundary
FALSE_START_ACTION = 0.5  # weight of the class-agnostic motion in a false start
NOISE_SD = 1.5  # white noise, every snippet on its own
DRIFT_SD = 1.5  # slow noise: white noise averaged over DRIFT_SNIPPETS neighbours (about 1 s), rescaled to this sd
DRIFT_SNIPPETS = 8
STYLE_SD = 0.4


class PatternBank:
    """Component index layout and the per-stream pattern directions, drawn once from the seed.

    Columns: scene of class c (c), take-off of class c (C + c), run-up of pair p (2C + p), then
    the class-agnostic action motion, start cue and end cue.
    """

    def __init__(self, rng: np.random.Generator, num_classes: int, dim: int):
        self.num_classes, self.dim = num_classes, dim
        c, p = num_classes, num_pairs(num_classes)
        self.kinds = np.array(["scene"] * c + ["take_off"] * c + ["run_up"] * p + ["action", "start", "end"])
        self.size = len(self.kinds)
        self.patterns = {}  # stream -> [K, D], each row scaled by the stream's weight of its kind
        for i, stream in enumerate(STREAMS):
            directions = rng.standard_normal((self.size, dim))
            weights = np.array([STREAM_WEIGHTS[k][i] for k in self.kinds])
            self.patterns[stream] = weights[:, None] * directions

    def scene(self, c): return c
    def take_off(self, c): return self.num_classes + c
    def run_up(self, p): return 2 * self.num_classes + p
    @property
    def action(self): return self.size - 3
    @property
    def start(self): return self.size - 2
    @property
    def end(self): return self.size - 1


def component_intervals(layout: VideoLayout, bank: PatternBank) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The active intervals of every component in a video: ([M, 2] seconds, [M] column, [M] amplitude)."""
    s, e = layout.true_segments[:, 0], layout.true_segments[:, 1]
    length = e - s
    mid0 = s + layout.run_up * length
    mid1 = mid0 + layout.take_off * length
    amp = layout.strength
    labels = layout.labels
    parts = [  # (start, end, column, amplitude), each an array over the instances
        (s, mid0, bank.run_up(pair_of(labels)), amp),
        (mid0, mid1, bank.take_off(labels), amp * layout.take_off_strength),
        (s, e, np.full_like(labels, bank.action), amp),
        (s - BOUNDARY_HALF_S, s + BOUNDARY_HALF_S, np.full_like(labels, bank.start), amp),
        (e - BOUNDARY_HALF_S, e + BOUNDARY_HALF_S, np.full_like(labels, bank.end), amp),
    ]
    fs = layout.false_starts
    ones = np.ones(len(fs))
    parts += [
        (fs[:, 0], fs[:, 1], bank.run_up(layout.false_start_pairs), ones),
        (fs[:, 0], fs[:, 1], np.full(len(fs), bank.action), FALSE_START_ACTION * ones),
        (np.zeros(1), np.full(1, layout.duration), np.full(1, bank.scene(layout.scene)), np.full(1, layout.scene_strength)),
    ]
    lo = np.concatenate([p[0] for p in parts])
    hi = np.concatenate([p[1] for p in parts])
    return np.column_stack([lo, hi]), np.concatenate([p[2] for p in parts]).astype(np.int64), np.concatenate([p[3] for p in parts])


def component_weights(layout: VideoLayout, bank: PatternBank) -> np.ndarray:
    """[T, K] weight of each component in each snippet: the covered fraction of the snippet's window."""
    intervals, column, amp = component_intervals(layout, bank)
    t0 = np.arange(layout.num_snippets) * GRID.stride / GRID.fps  # [T] first frame of each snippet, s
    t1 = t0 + GRID.window / GRID.fps
    cover = np.clip(np.minimum(t1[:, None], intervals[None, :, 1]) - np.maximum(t0[:, None], intervals[None, :, 0]), 0, None)
    cover *= amp[None, :] / (GRID.window / GRID.fps)  # [T, M]
    weights = np.zeros((layout.num_snippets, bank.size))
    np.add.at(weights.T, column, cover.T)  # sum the intervals of one column
    return weights


def _moving_average(x: np.ndarray) -> np.ndarray:
    """[T + w - 1, D] white noise -> [T, D] its running means over ``w = DRIFT_SNIPPETS`` rows, times
    sqrt(w) so that each entry keeps unit variance (neighbours share most of their terms)."""
    c = np.concatenate([np.zeros((1, x.shape[1])), np.cumsum(x, axis=0)])
    return (c[DRIFT_SNIPPETS:] - c[:-DRIFT_SNIPPETS]) / np.sqrt(DRIFT_SNIPPETS)


def synthesize(layout: VideoLayout, bank: PatternBank, rng: np.random.Generator) -> np.ndarray:
    """[T, 2D] float32 features, columns [0, D) rgb and [D, 2D) flow."""
    weights = component_weights(layout, bank)  # [T, K]
    out = []
    for stream in STREAMS:
        style = STYLE_SD * rng.standard_normal(bank.dim)  # [D]
        noise = NOISE_SD * rng.standard_normal((layout.num_snippets, bank.dim))  # [T, D]
        noise += DRIFT_SD * _moving_average(rng.standard_normal((layout.num_snippets + DRIFT_SNIPPETS - 1, bank.dim)))
        out.append(np.logaddexp(0.0, weights @ bank.patterns[stream] + style + noise))  # softplus
    return np.concatenate(out, axis=1).astype(np.float32)
