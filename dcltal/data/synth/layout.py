"""Where the actions of a synthetic video lie: counts, lengths, classes and placement, THUMOS14-like.

THUMOS14 (the ActionFormer file, both subsets): 15.4 instances a video (median 8, 10th-90th
percentile 2-36), 4.3 s an instance (median 3.0 s), videos of 213 s on average with 31% of the time
inside an action, and 85% of the videos holding a single class. The draws below imitate these
figures on shorter videos (docs/synthetic.md gives the resulting numbers).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dcltal.data.grid import TimeGrid

GRID = TimeGrid(fps=30.0, stride=4, window=16)  # the THUMOS14 I3D grid the configs use
MEAN_INSTANCES = 15.0  # THUMOS14: 15.4 a video
MAX_INSTANCES = 45
LENGTH_MEDIAN_S, LENGTH_LOG_SD = 3.0, 0.55  # log-normal instance lengths (THUMOS14 median 3.0 s)
LENGTH_RANGE_S = (0.8, 9.0)  # upper bound: a 300-frame proposal must be able to cover every instance
COVERAGE_RANGE = (0.3, 0.5)  # fraction of a video inside actions
MIN_VIDEO_S, MIN_GAP_S = 30.0, 0.4
SECOND_CLASS_P = 0.2  # videos with instances of a second class; half of them the confusable partner
PARTNER_P = 0.5
SECOND_CLASS_SHARE = 0.4  # share of a two-class video's instances that take the second class
SCENE_MATCH_P = 0.75  # the scene is the main class's scene in this share of videos, a random one elsewhere
FALSE_STARTS_MEAN = 2.0  # run-ups that lead to no action, per video (Poisson), not annotated
FALSE_START_RANGE_S = (0.8, 2.0)
LABEL_NOISE = 0.08  # annotated boundaries move by N(0, (LABEL_NOISE * length)^2): ambiguous boundaries


def partner(c: int, num_classes: int) -> int:
    """The confusable partner of class ``c``: classes (0, 1), (2, 3), ... form pairs; an odd last
    class has none and is its own partner."""
    p = c ^ 1
    return p if p < num_classes else c


def pair_of(c):
    """Pair index of class ``c`` (an int or an array): the run-up pattern it shares with its partner."""
    return c // 2


def num_pairs(num_classes: int) -> int:
    return (num_classes + 1) // 2


@dataclass
class VideoLayout:
    duration: float  # seconds, = GRID.duration(num_snippets)
    num_snippets: int
    segments: np.ndarray  # [M, 2] seconds, the annotated instances (rounded to 0.01 s)
    true_segments: np.ndarray  # [M, 2] seconds, sorted and disjoint: where the features show the action
    labels: np.ndarray  # [M] class index
    run_up: np.ndarray  # [M] fraction of each instance spent in its run-up
    take_off: np.ndarray  # [M] fraction spent in its take-off (after the run-up); the rest is follow-through
    strength: np.ndarray  # [M] overall amplitude of the instance
    take_off_strength: np.ndarray  # [M] extra amplitude of the class-discriminative take-off
    scene: int  # the video's scene (a class index)
    scene_strength: float
    false_starts: np.ndarray  # [F, 2] seconds: run-ups of the scene's pair that lead to no action
    false_start_pairs: np.ndarray  # [F] pair index of each


def draw_layout(rng: np.random.Generator, num_classes: int) -> VideoLayout:
    """One video's actions. Every quantity is drawn from ``rng`` in a fixed order (determinism)."""
    # instance count: 1 + negative binomial, mean MEAN_INSTANCES, heavy right tail like THUMOS14
    n = int(min(1 + rng.negative_binomial(2, 2 / (2 + MEAN_INSTANCES - 1)), MAX_INSTANCES))
    lengths = np.clip(LENGTH_MEDIAN_S * np.exp(LENGTH_LOG_SD * rng.standard_normal(n)), *LENGTH_RANGE_S)
    lengths = np.round(lengths, 2)
    main = int(rng.integers(num_classes))
    labels = np.full(n, main, dtype=np.int64)
    if num_classes > 1 and n > 1 and rng.random() < SECOND_CLASS_P:
        other = partner(main, num_classes) if rng.random() < PARTNER_P else int(rng.integers(num_classes))
        if other == main:
            other = (main + 1 + int(rng.integers(num_classes - 1))) % num_classes
        labels[rng.random(n) < SECOND_CLASS_SHARE] = other
    coverage = rng.uniform(*COVERAGE_RANGE)
    # the grid fixes the duration: T snippets span exactly GRID.duration(T) seconds
    want = max(MIN_VIDEO_S, lengths.sum() / coverage, lengths.sum() + (n + 1) * MIN_GAP_S * 2)
    num_snippets = int(np.ceil(GRID.to_index(want - GRID.window / 2 / GRID.fps))) + 1
    duration = GRID.duration(num_snippets)
    # background split into n + 1 gaps, each at least MIN_GAP_S
    spare = duration - lengths.sum() - (n + 1) * MIN_GAP_S
    gaps = MIN_GAP_S + spare * rng.dirichlet(np.ones(n + 1))
    starts = np.cumsum(gaps[:-1]) + np.concatenate([[0.0], np.cumsum(lengths[:-1])])
    starts = np.floor(starts * 100) / 100  # round down: keeps the gaps and the end inside the video
    true_segments = np.column_stack([starts, np.round(starts + lengths, 2)])
    # annotators disagree on boundaries: the annotation moves, the action in the features does not
    moved = true_segments + LABEL_NOISE * lengths[:, None] * rng.standard_normal((n, 2))
    end = np.clip(np.round(moved.max(axis=1), 2), 0.1, np.floor(duration * 100) / 100)
    segments = np.column_stack([np.round(np.clip(moved.min(axis=1), 0, end - 0.1), 2), end])
    run_up = rng.uniform(0.35, 0.5, n)
    take_off = rng.uniform(0.3, 0.4, n)
    strength = rng.uniform(0.6, 1.4, n)
    take_off_strength = rng.uniform(0.3, 1.0, n)
    scene = main if rng.random() < SCENE_MATCH_P else int(rng.integers(num_classes))
    scene_strength = float(rng.uniform(0.6, 1.0))
    false_starts = _false_starts(rng, true_segments, duration)
    return VideoLayout(duration, num_snippets, segments, true_segments, labels, run_up, take_off, strength,
                       take_off_strength, scene, scene_strength, false_starts,
                       np.full(len(false_starts), pair_of(scene), dtype=np.int64))


def _false_starts(rng: np.random.Generator, segments: np.ndarray, duration: float) -> np.ndarray:
    """[F, 2] run-ups placed in the background; a draw that would touch an action is dropped."""
    f = rng.poisson(FALSE_STARTS_MEAN)
    length = rng.uniform(*FALSE_START_RANGE_S, f)
    start = rng.uniform(0, duration - length)
    cand = np.column_stack([start, start + length])
    # keep a margin of MIN_GAP_S to every action so the false start never blurs into one
    clear = ~((cand[:, None, 0] < segments[None, :, 1] + MIN_GAP_S)
              & (cand[:, None, 1] > segments[None, :, 0] - MIN_GAP_S)).any(axis=1)
    return cand[clear]
