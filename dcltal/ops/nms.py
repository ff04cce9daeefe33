"""Non-maximum suppression over temporal segments, in torch (paper §3.6: per-class NMS comes last).

No compiled extension and no torchvision (the most reported install failure in TAL repos): plain
tensor ops on the device of the inputs. Per-class suppression uses torchvision's ``batched_nms``
trick: each class's segments are shifted into a stretch of time of their own, so segments of
different classes never overlap and one pass serves every class.
"""
from __future__ import annotations

import torch


def segment_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """[N, M] temporal IoU of segments ``a`` [N, 2] and ``b`` [M, 2] (start, end).

    Two zero-length segments score 1 where they coincide and 0 elsewhere, as
    :func:`dcltal.data.segments.pairwise_tiou` does.
    """
    inter = (torch.minimum(a[:, None, 1], b[None, :, 1]) - torch.maximum(a[:, None, 0], b[None, :, 0])).clamp(min=0)
    union = (a[:, None, 1] - a[:, None, 0]) + (b[None, :, 1] - b[None, :, 0]) - inter
    iou = torch.where(union > 0, inter / union.clamp(min=torch.finfo(union.dtype).tiny), torch.zeros_like(inter))
    same_point = (union <= 0) & (a[:, None, 0] == b[None, :, 0]) & (a[:, None, 1] == b[None, :, 1])
    return torch.where(same_point, torch.ones_like(iou), iou)


def nms(segments: torch.Tensor, scores: torch.Tensor, iou: float, max_keep: int | None = None) -> torch.Tensor:
    """Greedy hard NMS: [K] indices into ``segments`` [N, 2] / ``scores`` [N] of the kept segments,
    best first. A segment is suppressed when its IoU with a kept, higher-scoring one exceeds ``iou``.
    Ties in score keep input order. Stops after ``max_keep`` segments where given."""
    order = torch.argsort(scores, descending=True, stable=True)  # [N]
    keep = []
    while order.numel() > 0 and (max_keep is None or len(keep) < max_keep):
        best, rest = order[:1], order[1:]
        keep.append(best)
        overlap = segment_iou(segments[best], segments[rest])[0]  # [len(rest)]
        order = rest[overlap <= iou]
    return torch.cat(keep) if keep else order.new_zeros(0)


def soft_nms(
    segments: torch.Tensor,
    scores: torch.Tensor,
    sigma: float = 0.5,
    score_threshold: float = 1e-3,
    max_keep: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gaussian Soft-NMS (Bodla et al. 2017): pick the best segment, decay every other score by
    ``exp(-IoU^2 / sigma)``, repeat. Returns ([K] indices into the input, [K] decayed scores), in
    the order picked (non-increasing score); segments whose score falls below ``score_threshold``
    are dropped. Stops after ``max_keep`` picks where given."""
    current = scores.clone()  # [N] decayed as segments are picked
    remaining = torch.arange(scores.numel(), device=scores.device)  # [R]
    keep, kept_scores = [], []
    while remaining.numel() > 0 and (max_keep is None or len(keep) < max_keep):
        pos = int(torch.argmax(current[remaining]))
        best = remaining[pos : pos + 1]
        keep.append(best)
        kept_scores.append(current[best])
        remaining = torch.cat([remaining[:pos], remaining[pos + 1 :]])
        overlap = segment_iou(segments[best], segments[remaining])[0]  # [R]
        current[remaining] = current[remaining] * torch.exp(-overlap.square() / sigma).to(current.dtype)
        remaining = remaining[current[remaining] >= score_threshold]
    if not keep:
        return remaining.new_zeros(0), scores.new_zeros(0)
    return torch.cat(keep), torch.cat(kept_scores)


def _separate_classes(segments: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Shift each class's segments into a stretch of time of its own, so classes never overlap."""
    if segments.numel() == 0:
        return segments
    segments = segments.to(torch.float64)  # the shifts must not cost float32 precision at long offsets
    low, high = segments.min(), segments.max()
    return segments - low + labels[:, None].to(segments.dtype) * (high - low + 1)


def batched_nms(
    segments: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, iou: float, max_keep: int | None = None
) -> torch.Tensor:
    """Per-class hard NMS over [N] (segment, score, label) triples: [K] kept indices, best first."""
    return nms(_separate_classes(segments, labels), scores, iou, max_keep)


def batched_soft_nms(
    segments: torch.Tensor,
    scores: torch.Tensor,
    labels: torch.Tensor,
    sigma: float = 0.5,
    score_threshold: float = 1e-3,
    max_keep: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class Gaussian Soft-NMS: ([K] kept indices, [K] decayed scores), best first."""
    return soft_nms(_separate_classes(segments, labels), scores, sigma, score_threshold, max_keep)
