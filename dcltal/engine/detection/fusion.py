"""Late fusion (paper §3.6): the streams' scores and regressed boundaries per proposal, then the
video-level class scores.

The paper fuses "the final confidence scores and the regressed boundaries from the RGB and optical
flow streams" with the ratio RGB:Flow = 5:6 (§4, implementation details): a weighted average of
both, per proposal and class. Video-level class scores (UntrimmedNet's in the paper, "as a common
practice" of P-GCN and its successors) are multiplied in, keeping only the video's top classes,
as SSN/P-GCN's THUMOS14 evaluation keeps the top 2.

The weights are either fixed (``infer.stream_weights: {rgb: 5, flow: 6}``, the paper's) or
``held_out``: validation during training scores each of :func:`weight_candidates` on the held-out
training videos and the checkpoint keeps the best (docs/inference.md). Across the accuracy zoo
(docs/benchmarks.md) a stream that carries little class evidence pulled the fixed 5:6 below the
better stream alone in seven of eight settings; weights chosen on held-out videos avoid that.

Optionally each proposal's own score (its generator's confidence) is multiplied in as well: the
paper's Table 6 "combine[s] proposals with the scores of BMN" on ActivityNet, as TCANet does, and
gives no formula; dcltal multiplies, as BMN and BSN make their own detections (proposal score times
class score). Off by default (``infer.proposal_score: none``).
"""
from __future__ import annotations

import logging
from typing import Callable, Mapping, Sequence, TypeVar

import torch

from dcltal.errors import UserError

HELD_OUT = "held_out"  # infer.stream_weights: the weights validation chose on the held-out videos
log = logging.getLogger(__name__)
T = TypeVar("T")
_warned: set[str] = set()  # checkpoints already warned about (a predict() a video must not repeat it)


def weight_candidates(streams: Sequence[str]) -> list[dict[str, float]]:
    """The stream weights ``held_out`` validation tries: for two streams the first one's share
    from 0 to 1 in steps of 0.1; for more, equal weights and each stream alone. The most balanced
    come first, so a tie keeps the more balanced fusion."""
    streams = list(streams)
    if len(streams) == 2:
        tenths = sorted(range(11), key=lambda i: (abs(i - 5), i))  # 5, 4, 6, 3, 7, ...: integers, no rounding ties
        return [{streams[0]: i / 10, streams[1]: (10 - i) / 10} for i in tenths]
    return [{s: 1.0 for s in streams}] + ([{s: float(s == t) for s in streams} for t in streams] if len(streams) > 1 else [])


def choose_weights(streams: Sequence[str], evaluate: Callable[[dict[str, float]], T],
                   score: Callable[[T], float]) -> tuple[dict[str, float], T]:
    """The candidate weights (:func:`weight_candidates`) whose ``evaluate`` result has the highest
    ``score`` (the first of equals: the most balanced), and that result."""
    return max(((w, evaluate(w)) for w in weight_candidates(streams)), key=lambda pair: score(pair[1]))


def resolve_weights(setting, chosen: Mapping[str, float] | None, streams: Sequence[str], source: str,
                    trained_with=None) -> dict[str, float]:
    """``infer.stream_weights`` as fusion takes them: a mapping as it is; ``held_out``: ``chosen``
    (what training's validation chose, stored in checkpoint ``source``), else the fixed weights the
    checkpoint was trained with (``trained_with``, its stored config's), else equal weights with a
    warning (held_out without held-out videos: ``train.val_fraction`` 0)."""
    if not isinstance(setting, str):
        return dict(setting)
    if chosen:
        return dict(chosen)
    if trained_with is not None and not isinstance(trained_with, str):
        return dict(trained_with)
    if len(streams) > 1 and source not in _warned:
        _warned.add(source)
        log.warning("infer.stream_weights is held_out, but no held-out videos chose weights for checkpoint %s "
                    "(trained with train.val_fraction 0?): fusing the streams with equal weights; "
                    "set infer.stream_weights, e.g. --set 'infer.stream_weights={rgb: 5, flow: 6}'", source)
    return {s: 1.0 for s in streams}


def fuse_streams(values: dict[str, torch.Tensor], weights: dict[str, float]) -> torch.Tensor:
    """Weighted average over streams of same-shaped tensors (scores [N, C] or boundaries
    [N, 2] / [N, C, 2]), with the weights of the streams present renormalised to sum to 1, so a
    single stream passes through unchanged (whatever its weight: held_out may have given it 0)."""
    if isinstance(weights, str):  # held_out reaches fusion only through a checkpoint (resolve_weights)
        raise UserError(f"infer.stream_weights: {weights} names weights a trained checkpoint holds; "
                        "detect through dcltal infer / dcltal.load(CKPT), or give the weights, e.g. {rgb: 5, flow: 6}")
    missing = [s for s in values if s not in weights]
    if missing:
        raise UserError(
            f"config key infer.stream_weights has no weight for stream {missing[0]!r} "
            f"(it has {sorted(weights)}); add one, e.g. --set infer.stream_weights.{missing[0]}=1"
        )
    if len(values) == 1:
        weights = {s: 1.0 for s in values}
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
