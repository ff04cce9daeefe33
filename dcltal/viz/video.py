"""The figures of one video: attention curves per stream (paper Fig. 1 and 3) and the timeline."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import torch

from dcltal.data.grid import TimeGrid
from dcltal.viz.attention import attention_curves, plot_attention
from dcltal.viz.timeline import plot_timeline


@torch.no_grad()
def snippet_features(model: torch.nn.Module, x: np.ndarray) -> dict[str, np.ndarray]:
    """{"original", "cls", "loc"} -> [T, D] snippet features of one video through ``model``'s
    disentanglement net (or what its variant puts in its place)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        feats = model.snippet_features(torch.as_tensor(np.asarray(x, dtype=np.float32), device=device))
    finally:
        model.train(was_training)
    return {k: feats[k].float().cpu().numpy() for k in ("original", "cls", "loc")}


def video_figures(
    models: Mapping[str, torch.nn.Module],
    video_id: str,
    grid: TimeGrid,
    features: Mapping[str, np.ndarray],
    gt_segments: np.ndarray,
    gt_labels: Sequence[str],
    detections: Sequence[dict],
    duration: float,
    out_dir: str | os.PathLike,
    instances: int = 1,
) -> list[tuple[str, str]]:
    """Write ``timeline.png`` and, for the ``instances`` longest ground truths and each stream,
    ``attention_<stream>_<k>.png``: the cosine similarity of the max-pooled proposal feature with
    each snippet (Eq. 6-7), over the ground truth and its two 50% extended regions. Returns
    [(caption, file name)]."""
    out = Path(out_dir)
    figures = []
    plot_timeline(gt_segments, gt_labels, detections, duration, out / "timeline.png",
                  title=f"{video_id}: detections (best first) against the ground truth")
    figures.append((f"{video_id}: detections against the ground truth", "timeline.png"))
    gt_segments = np.asarray(gt_segments, dtype=np.float64).reshape(-1, 2)
    longest = np.argsort(-(gt_segments[:, 1] - gt_segments[:, 0]), kind="stable")[:instances]
    for k, g in enumerate(longest):
        s, e = gt_segments[g]
        for stream, model in models.items():
            t = features[stream].shape[0]
            (lo,), (hi,) = grid.snippet_ranges([s], [e], t)
            (a,), (b,) = grid.snippet_ranges([s - 0.5 * (e - s)], [e + 0.5 * (e - s)], t)
            curves = attention_curves(snippet_features(model, features[stream]), lo, hi, (a, b))
            name = f"attention_{stream}_{k}.png"
            caption = f"{video_id}, {stream}: {gt_labels[g]} [{s:.1f}, {e:.1f}] s (Fig. 1-style)"
            plot_attention(grid.centres(t)[a:b], curves, (s, e), out / name, title=caption)
            figures.append((caption, name))
    return figures
