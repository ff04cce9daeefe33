"""From the generator's maps to proposals in seconds.

Decoding (BMN §3.6): candidate starts (ends) are locations whose starting (ending) probability is a
local maximum or above ``peak_ratio`` of the window's maximum; every candidate start is paired with
every candidate end 1..D locations later; a pair scores ``p_f = p_s * p_e * sqrt(p_cc * p_cr)`` with
the confidence map's two channels at its entry. The candidates of all windows of a video go through
Gaussian Soft-NMS together (overlapping windows propose the same segment twice; Soft-NMS decays the
copy).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from dcltal.config import ProposalsConfig
from dcltal.data.videos import VideoRecord
from dcltal.engine.proposals.task import video_windows, window_features
from dcltal.model.bmn import BMN
from dcltal.ops.nms import soft_nms


def boundary_candidates(prob: np.ndarray, peak_ratio: float = 0.5) -> np.ndarray:
    """[L] bool: locations whose probability is a local maximum (above both neighbours; above the
    one neighbour at either end) or above ``peak_ratio`` times the maximum (BMN §3.6)."""
    prob = np.asarray(prob, dtype=np.float64)
    if prob.size == 0:
        return np.zeros(0, dtype=bool)
    padded = np.concatenate([[-np.inf], prob, [-np.inf]])
    peak = (prob > padded[:-2]) & (prob > padded[2:])
    return peak | (prob > peak_ratio * prob.max())


def decode_window(start: np.ndarray, end: np.ndarray, cls_map: np.ndarray, reg_map: np.ndarray, length: int,
                  peak_ratio: float = 0.5) -> np.ndarray:
    """One window's candidates [K, 3]: (start location, end location, p_f) for every candidate start
    and end 1..D locations apart inside the first ``length`` locations; maps are [D, T]."""
    D = cls_map.shape[0]
    s = np.flatnonzero(boundary_candidates(start[:length], peak_ratio))  # [S]
    e = np.flatnonzero(boundary_candidates(end[:length], peak_ratio))  # [E]
    ss, ee = np.meshgrid(s, e, indexing="ij")
    ok = (ee > ss) & (ee - ss <= D)
    ss, ee = ss[ok], ee[ok]
    k = ee - ss - 1
    score = start[ss] * end[ee] * np.sqrt(cls_map[k, ss] * reg_map[k, ss])
    return np.stack([ss, ee, score], axis=1).astype(np.float64) if len(ss) else np.zeros((0, 3))


@torch.no_grad()
def generate_proposals(model: BMN, videos: Sequence[VideoRecord], cfg: ProposalsConfig, streams: list[str] | None = None,
                       progress: bool = False) -> dict[str, np.ndarray]:
    """``{video: [N, 3]}`` (start s, end s, score), best first, at most ``max_proposals`` a video; the
    network reads the ``streams`` side by side in that order (default: the records' own)."""
    from tqdm import tqdm

    was_training = model.training
    model.eval()
    dev = next(model.parameters()).device
    out = {}
    for video in tqdm(videos, desc="propose", unit="video", disable=not progress):
        features = video.side_by_side(streams)  # [T_v, C]
        windows = video_windows(len(features), cfg)
        candidates = []
        for lo in range(0, len(windows), cfg.windows_per_batch):
            chunk = windows[lo : lo + cfg.windows_per_batch]
            x = torch.from_numpy(np.stack([window_features(features, w, cfg.temporal_scale) for w in chunk]))
            pred = model(x.to(dev))
            arrays = [t.float().cpu().numpy() for t in (pred.start, pred.end, pred.cls_map, pred.reg_map)]
            for j, w in enumerate(chunk):
                found = decode_window(*(a[j] for a in arrays), w.length, cfg.peak_ratio)  # locations
                coords = w.first + w.step * found[:, :2]
                candidates.append(np.column_stack([video.grid.to_seconds(coords), found[:, 2]]))
        out[video.id] = suppress(np.concatenate(candidates), video.duration, cfg)
    model.train(was_training)
    return out


def suppress(candidates: np.ndarray, duration: float, cfg: ProposalsConfig) -> np.ndarray:
    """A video's candidates [K, 3] (seconds) -> the top ``pre_nms_top_k`` through Gaussian Soft-NMS,
    clipped to ``[0, duration]``, at most ``max_proposals``, best first."""
    candidates = candidates[np.argsort(-candidates[:, 2], kind="stable")[: cfg.pre_nms_top_k]]
    candidates[:, :2] = np.clip(candidates[:, :2], 0.0, duration)
    segments = torch.from_numpy(candidates[:, :2])
    keep, scores = soft_nms(segments, torch.from_numpy(candidates[:, 2]), sigma=cfg.soft_nms_sigma,
                            score_threshold=0.0, max_keep=cfg.max_proposals)
    return np.column_stack([candidates[keep.numpy(), :2], scores.numpy()]) if len(keep) else np.zeros((0, 3))
