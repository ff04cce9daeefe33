"""The time grid of snippet features: the one place where seconds and snippet indices meet.

Snippet ``t`` covers frames ``[t*stride, t*stride + window)``, so its centre lies at
``(t*stride + window/2) / fps`` seconds (CONTRACT §1).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class TimeGrid:
    fps: float
    stride: int
    window: int

    def centres(self, num_snippets: int) -> np.ndarray:
        """[T] centre of each snippet, in seconds."""
        return self.to_seconds(np.arange(num_snippets, dtype=np.float64))

    def to_seconds(self, index: np.ndarray | float) -> np.ndarray:
        """Continuous snippet coordinate -> seconds (snippet ``t``'s centre at index ``t``)."""
        return (np.asarray(index, dtype=np.float64) * self.stride + self.window / 2) / self.fps

    def to_index(self, seconds: np.ndarray | float) -> np.ndarray:
        """Seconds -> continuous snippet coordinate; the inverse of :meth:`to_seconds`."""
        return (np.asarray(seconds, dtype=np.float64) * self.fps - self.window / 2) / self.stride

    def duration(self, num_snippets: int) -> float:
        """Seconds spanned by ``num_snippets`` snippets: up to the last frame of the last one."""
        return ((max(num_snippets, 1) - 1) * self.stride + self.window) / self.fps

    def snippet_ranges(self, starts: np.ndarray, ends: np.ndarray, num_snippets: int) -> tuple[np.ndarray, np.ndarray]:
        """Segments in seconds -> half-open snippet ranges ``[lo, hi)`` of the snippets whose centres
        lie inside, clipped to the video; a segment with no centre inside gets its nearest snippet,
        so every range holds at least one snippet."""
        starts, ends = np.asarray(starts, dtype=np.float64), np.asarray(ends, dtype=np.float64)
        # a small tolerance so that a segment starting exactly at a centre includes it
        lo = np.ceil(self.to_index(starts) - 1e-9)
        hi = np.floor(self.to_index(ends) + 1e-9) + 1
        lo = np.clip(lo, 0, num_snippets - 1)
        hi = np.clip(hi, 0, num_snippets)
        empty = hi <= lo
        nearest = np.clip(np.rint(self.to_index((starts + ends) / 2)), 0, num_snippets - 1)
        lo = np.where(empty, nearest, lo)
        hi = np.where(empty, nearest + 1, hi)
        return lo.astype(np.int64), hi.astype(np.int64)
