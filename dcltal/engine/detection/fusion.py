"""Late fusion (paper §3.6): the streams' scores and regressed boundaries per proposal, then the
video-level class scores.

The paper fuses "the final confidence scores and the regressed boundaries from the RGB and optical
flow streams" with the ratio RGB:Flow = 5:6 (§4, implementation details): a weighted average of
both, per proposal and class. Video-level class scores (UntrimmedNet's in the paper, "as a common
practice" of P-GCN and its successors) are multiplied in, keeping only the video's top classes,
as SSN/P-GCN's THUMOS14 evaluation keeps the top 2.

Optionally each proposal's own score (its generator's confidence) is multiplied in as well: the
paper's Table 6 "combine[s] proposals with the scores of BMN" on ActivityNet, as TCANet does, and
gives no formula; dcltal multiplies, as BMN and BSN make their own detections (proposal score times
class score). Off by default (``infer.proposal_score: none``).
"""
from __future__ import annotations

import torch

from dcltal.errors import UserError


def fuse_streams(values: dict[str, torch.Tensor], weights: dict[str, float]) -> torch.Tensor:
    """Weighted average over streams of same-shaped tensors (scores [N, C] or boundaries
    [N, 2] / [N, C, 2]), with the weights of the streams present renormalised to sum to 1, so a
    single stream passes through unchanged."""
    missing = [s for s in values if s not in weights]
    if missing:
        raise UserError(
            f"config key infer.stream_weights has no weight for stream {missing[0]!r} "
            f"(it has {sorted(weights)}); add one, e.g. --set infer.stream_weights.{missing[0]}=1"
        )
    total = sum(float(weights[s]) for s in values)
    if total <= 0:
        raise UserError(f"config key infer.stream_weights: the weights of {sorted(values)} must sum to more than 0")
    return sum(values[s] * (float(weights[s]) / total) for s in values)


def fuse_video_scores(scores: torch.Tensor, video_scores: torch.Tensor, top_k: int | None) -> torch.Tensor:
    """[N, C] proposal scores times the video's [C] class scores, where only the video's ``top_k``
    best classes survive (the others become 0); ``top_k`` None or <= 0 keeps every class."""
    video_scores = video_scores.to(scores)
    if top_k is not None and 0 < top_k < video_scores.numel():
        kept = torch.zeros_like(video_scores)
        best = torch.topk(video_scores, top_k).indices
        kept[best] = video_scores[best]
        video_scores = kept
    return scores * video_scores[None, :]


def fuse_proposal_scores(scores: torch.Tensor, proposal_scores: torch.Tensor) -> torch.Tensor:
    """[N, C] detection scores times each proposal's own score [N] (``infer.proposal_score:
    multiply``; the paper's Table 6 setting), the same factor for every class of a proposal."""
    return scores * proposal_scores.to(scores)[:, None]
