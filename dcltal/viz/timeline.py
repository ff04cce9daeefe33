"""One video's detections against its ground truth on a timeline."""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.patches import Patch

from dcltal.viz.figure import new_figure, save_figure


def plot_timeline(
    gt_segments: np.ndarray,
    gt_labels: Sequence[str],
    detections: Sequence[dict],
    duration: float,
    out_png: str | os.PathLike,
    title: str = "",
    max_detections: int = 20,
) -> None:
    """Ground truth ([M, 2] seconds, M labels) on the top row; below it, the ``max_detections`` best
    detections (ActivityNet results entries) one a row, best on top, coloured by class, with
    their scores. A detection's class matches a ground truth's where the colours agree."""
    dets = sorted(detections, key=lambda d: -d["score"])[:max_detections]
    names = sorted(set(gt_labels) | {d["label"] for d in dets})
    cmap = colormaps["tab20"]
    colour = {n: cmap(i % 20) for i, n in enumerate(names)}
    rows = 1 + len(dets)
    fig, ax = new_figure(size=(11, 1.2 + 0.28 * rows))
    for (s, e), label in zip(np.asarray(gt_segments).reshape(-1, 2), gt_labels):
        ax.barh(rows - 1, e - s, left=s, height=0.8, color=colour[label], edgecolor="black")
    for i, d in enumerate(dets):
        s, e = d["segment"]
        y = rows - 2 - i
        ax.barh(y, e - s, left=s, height=0.6, color=colour[d["label"]], alpha=0.85)
        ax.text(min(e, duration), y, f" {d['score']:.2f}", va="center", fontsize=7)
    ax.set_yticks([rows - 1] + [rows - 2 - i for i in range(len(dets))])
    ax.set_yticklabels(["ground truth"] + [f"#{i + 1}" for i in range(len(dets))], fontsize=7)
    ax.set_xlim(0, duration * 1.06)
    ax.set_xlabel("time (s)")
    handles = [Patch(color=colour[n], label=n) for n in names]
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.set_title(title or "detections (best first) against the ground truth")
    save_figure(fig, out_png)
