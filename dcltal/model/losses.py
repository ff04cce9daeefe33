"""The multi-task loss of Eq. 15 (its targets: data/labelling.py).

Reduction (so that videos split across processes give the same gradients when summed): every term
is a MEAN PER VIDEO (over that video's samples of the term; 0 where it has none), then these means
are SUMMED over the batch's videos and divided by ``num_videos``. With ``num_videos`` = the number
of videos in the whole step (all processes), each process's loss is its share of the global loss
and the gradients add up to those of the unsplit batch (DDP averages instead of summing, so pass
``num_videos`` = videos per process there, with equal shards). The default is the batch's own count.
Completeness OHEM is per video for the same reason.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from dcltal.data.labelling import Targets


def per_video_mean(values: torch.Tensor, mask: torch.Tensor, video: torch.Tensor, num_videos_in_batch: int):
    """[V] mean of ``values`` [N] over each video's rows where ``mask``; 0 for a video without any."""
    w = mask.to(values.dtype)
    total = values.new_zeros(num_videos_in_batch).index_add(0, video, torch.where(mask, values, 0.0))
    count = values.new_zeros(num_videos_in_batch).index_add(0, video, w)
    return total / count.clamp_min(1.0)


def completeness_hinge(scores: torch.Tensor, targets: Targets, video: torch.Tensor, num_videos_in_batch: int,
                       ohem_ratio: float) -> torch.Tensor:
    """[V] completeness hinge of each video: complete proposals (label +1) all count,
    max(0, 1 - z); of the incomplete ones (label -1), max(0, 1 + z), only the hardest
    ``floor(ohem_ratio * n)`` (at least 1 where any) of the video count (online hard example mining);
    the mean over the counted ones. z = the score of the proposal's ``action`` class."""
    valid = (targets.completeness >= 0) & (targets.action > 0)
    cls = (targets.action - 1).clamp_min(0)
    z = scores.gather(1, cls.unsqueeze(1)).squeeze(1)  # [N]
    positive = targets.completeness == 1
    loss = torch.where(positive, F.relu(1.0 - z), F.relu(1.0 + z))  # [N]
    out = []
    for v in range(num_videos_in_batch):
        in_v = valid & (video == v)
        pos = loss[in_v & positive]
        neg = loss[in_v & ~positive]
        if neg.numel():
            keep = max(1, math.floor(ohem_ratio * neg.numel()))
            neg = neg.topk(keep).values
        n = pos.numel() + neg.numel()
        out.append((pos.sum() + neg.sum()) / n if n else loss.sum() * 0.0)
    return torch.stack(out) if out else loss.new_zeros(0)


def detector_losses(out, targets: Targets, proposal_video: torch.Tensor, num_videos_in_batch: int,
                    num_videos: int | None = None, lambda_reg: float = 0.5, lambda_com: float = 0.5,
                    ohem_ratio: float = 1 / 6) -> dict[str, torch.Tensor]:
    """Eq. 15: cls (cross-entropy), reg (smooth L1, summed over start and end), com (hinge with OHEM),
    rec (Eq. 3 per proposal), and total = cls + lambda_reg reg + lambda_com com + rec; reduced as the
    module docstring says."""
    denom = float(num_videos if num_videos is not None else num_videos_in_batch)
    vid, nv = proposal_video, num_videos_in_batch
    sample = targets.labels >= 0
    ce = F.cross_entropy(out.cls_logits, targets.labels.clamp_min(0), reduction="none")  # [N]
    reg_pred = out.regression
    if reg_pred.dim() == 3:  # class-specific: the action's pair
        idx = (targets.action - 1).clamp_min(0).view(-1, 1, 1).expand(-1, 1, 2)
        reg_pred = reg_pred.gather(1, idx).squeeze(1)
    mask = targets.regression_mask & (targets.action > 0) if reg_pred is not out.regression else targets.regression_mask
    sl1 = F.smooth_l1_loss(reg_pred, targets.regression.to(reg_pred.dtype), reduction="none").sum(-1)  # [N]
    everyone = torch.ones_like(sample)
    terms = {
        "cls": per_video_mean(ce, sample, vid, nv).sum() / denom,
        "reg": per_video_mean(sl1, mask, vid, nv).sum() / denom,
        "com": completeness_hinge(out.completeness, targets, vid, nv, ohem_ratio).sum() / denom,
        "rec": per_video_mean(out.reconstruction, everyone, vid, nv).sum() / denom,
    }
    terms["total"] = terms["cls"] + lambda_reg * terms["reg"] + lambda_com * terms["com"] + terms["rec"]
    return terms
