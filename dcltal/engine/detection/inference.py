"""Inference in the paper's order (§3.6, DESIGN §1-2): from proposals to the ActivityNet results JSON.

Per stream, each proposal's final scores (Eq. 16: softmax(cls)[1:] * exp(completeness)) and its
regressed boundaries (Eq. 14, decoded by the SegmentCoder); the streams fused per proposal with the
RGB:Flow 5:6 weighted average of both; video-level class scores multiplied in (top-k classes a
video), and, with ``infer.proposal_score: multiply``, each proposal's own score (Table 6); the
top-k (proposal, class) pairs; per-class NMS (hard, or Gaussian Soft-NMS) last, capped at
``max_detections`` a video. ``infer.order = nms_first`` is the SSN/P-GCN lineage's order instead:
NMS on the original proposal boundaries, the regression applied to the survivors.

:func:`detect` is also what training calls for validation mAP, so it reads no files and keeps the
work on the models' device: one forward per stream for several videos packed end to end.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from dcltal import __version__
from dcltal.data.videos import VideoRecord
from dcltal.engine.detection.fusion import fuse_proposal_scores, fuse_streams, fuse_video_scores
from dcltal.errors import UserError
from dcltal.model.batch import pack_videos
from dcltal.ops.nms import batched_nms, batched_soft_nms


def _duration(video: VideoRecord) -> float:
    if video.duration is not None:
        return float(video.duration)
    return video.grid.duration(next(iter(video.features.values())).shape[0])


@torch.no_grad()
def stream_predictions(
    model: nn.Module,
    stream: str,
    videos: Sequence[VideoRecord],
    coder,
    cls_feature: str = "cls",
    loc_feature: str = "loc",
    extend_ratio: float = 0.5,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """One stream's (scores [N, C] (Eq. 16), boundaries [N, 2] or [N, C, 2] in seconds) per video,
    from a single forward over the videos packed end to end."""
    device = next(model.parameters()).device
    feats = [torch.as_tensor(np.asarray(v.features[stream], dtype=np.float32)) for v in videos]
    props = [np.asarray(v.proposals, dtype=np.float64)[:, :2] for v in videos]
    batch = pack_videos(feats, props, [v.grid for v in videos], extend_ratio).to(device)
    was_training = model.training
    model.eval()
    try:
        out = model(batch, cls_feature=cls_feature, loc_feature=loc_feature, reconstruction=False)
        scores = model.scores(out).float()  # [N, C]
    finally:
        model.train(was_training)
    proposals = torch.as_tensor(np.concatenate(props), dtype=torch.float32, device=device)  # [N, 2]
    deltas = out.regression.float()
    if deltas.dim() == 3:  # class-specific: [N, C, 2], one decode per (proposal, class)
        n, c, _ = deltas.shape
        bounds = coder.decode(proposals.repeat_interleave(c, dim=0), deltas.reshape(-1, 2)).reshape(n, c, 2)
    else:
        bounds = coder.decode(proposals, deltas)  # [N, 2]
    sizes = [len(p) for p in props]
    return list(zip(scores.split(sizes), bounds.split(sizes)))


def postprocess(
    scores: torch.Tensor,
    bounds: torch.Tensor,
    proposals: torch.Tensor,
    duration: float,
    infer_cfg,
    video_scores: torch.Tensor | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One video's fused scores [N, C] and boundaries ([N, 2] or [N, C, 2]) and its original
    proposals [N, 2] -> detections: (segments [K, 2] seconds, scores [K], class indices [K] 0..C-1),
    best first."""
    if video_scores is not None:
        scores = fuse_video_scores(scores, video_scores, infer_cfg.video_top_k)
    num_classes = scores.shape[1]
    flat = scores.reshape(-1)  # [N * C]
    # a stable sort, not topk: proposals that pool the same snippets tie, and ties keep input order
    pair = torch.argsort(flat, descending=True, stable=True)[: infer_cfg.top_k]  # [P]
    pair = pair[flat[pair] > 0]  # classes masked out by the video-level scores are not detections
    pair_scores = flat[pair]
    prop, label = pair // num_classes, pair % num_classes  # [P] each
    regressed = bounds[prop] if bounds.dim() == 2 else bounds[prop, label]  # [P, 2]
    nms_on = regressed if infer_cfg.order == "fuse_first" else proposals[prop].to(regressed)
    if infer_cfg.nms == "soft":
        keep, kept_scores = batched_soft_nms(
            nms_on, pair_scores, label, infer_cfg.soft_nms_sigma, max_keep=infer_cfg.max_detections
        )
    else:
        keep = batched_nms(nms_on, pair_scores, label, infer_cfg.nms_iou, max_keep=infer_cfg.max_detections)
        kept_scores = pair_scores[keep]
    segments = regressed[keep].sort(dim=1).values.clamp(0.0, duration)  # [K, 2] start <= end, inside the video
    return segments.cpu().double().numpy(), kept_scores.cpu().double().numpy(), label[keep].cpu().numpy()


def _chunks(videos: list, max_videos: int, max_proposals: int) -> Iterable[list]:
    """Consecutive groups of videos for one forward: at most ``max_videos``, and no more proposals
    than ``max_proposals`` unless one video alone has more (bounds the memory of a forward)."""
    chunk, count = [], 0
    for v in videos:
        n = len(v.proposals)
        if chunk and (len(chunk) == max_videos or count + n > max_proposals):
            yield chunk
            chunk, count = [], 0
        chunk.append(v)
        count += n
    if chunk:
        yield chunk


def predict_streams(
    models: Mapping[str, nn.Module],
    videos: Sequence[VideoRecord],
    coder,
    infer_cfg,
    *,
    extend_ratio: float = 0.5,
    videos_per_batch: int = 8,
    proposals_per_batch: int = 4096,
    progress: bool = False,
) -> Iterable[tuple[VideoRecord, dict[str, tuple[torch.Tensor, torch.Tensor]]]]:
    """Per video, each stream's (scores [N, C], boundaries [N, 2] / [N, C, 2]): the model half of
    inference, yielded video by video so that a large test set never sits in memory whole."""
    # the bar closes (ends its line) before an error propagates, so the error stands on a line of its own
    with tqdm(total=len(videos), desc="inference", unit="video", disable=not progress) as bar:
        for chunk in _chunks(list(videos), videos_per_batch, proposals_per_batch):
            per_stream = {
                s: stream_predictions(m, s, chunk, coder, infer_cfg.cls_feature, infer_cfg.loc_feature, extend_ratio)
                for s, m in models.items()
            }
            for i, video in enumerate(chunk):
                yield video, {s: p[i] for s, p in per_stream.items()}
            bar.update(len(chunk))


def video_detections(
    video: VideoRecord,
    predictions: Mapping[str, tuple[torch.Tensor, torch.Tensor]],
    infer_cfg,
    classes: Sequence[str],
    video_scores: Mapping[str, np.ndarray] | None = None,
) -> list[dict[str, Any]]:
    """The fusion half of inference for one video: the streams of ``predictions`` fused (5:6),
    video-level scores, the proposals' own scores where ``infer.proposal_score`` says so, top-k pairs,
    per-class NMS -> ActivityNet result entries, best first."""
    scores = fuse_streams({s: p[0] for s, p in predictions.items()}, infer_cfg.stream_weights)  # [N, C]
    bounds = fuse_streams({s: p[1] for s, p in predictions.items()}, infer_cfg.stream_weights)
    if infer_cfg.proposal_score == "multiply" and len(video.proposals):  # no proposals: nothing to weigh
        props = np.asarray(video.proposals, dtype=np.float64)  # [N, 2] or [N, 3]
        if props.shape[1] < 3:
            raise UserError(f"infer.proposal_score=multiply needs proposals with a score; those of video {video.id!r} "
                            "have none (use a BSN CSV or proposal JSON, or set infer.proposal_score=none)")
        scores = fuse_proposal_scores(scores, torch.as_tensor(props[:, 2], device=scores.device))
    level = None
    if video_scores is not None:
        if video.id not in video_scores:
            raise UserError(f"video-level scores (infer.video_scores) have no entry for video {video.id!r}")
        level = torch.as_tensor(np.asarray(video_scores[video.id]), dtype=scores.dtype, device=scores.device)
    proposals = torch.as_tensor(np.asarray(video.proposals, dtype=np.float64)[:, :2], device=scores.device)
    segs, kept, labels = postprocess(scores, bounds, proposals, _duration(video), infer_cfg, level)
    return [{"label": classes[c], "score": float(x), "segment": [float(a), float(b)]}
            for (a, b), x, c in zip(segs, kept, labels)]


def results_json(results: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """The ActivityNet results JSON object (CONTRACT §2)."""
    return {"version": f"dcltal {__version__}", "results": results, "external_data": {}}


def detect(
    models: Mapping[str, nn.Module],
    dataset: Iterable[VideoRecord],
    coder,
    infer_cfg,
    classes: Sequence[str],
    video_scores: Mapping[str, np.ndarray] | None = None,
    *,
    extend_ratio: float = 0.5,
    videos_per_batch: int = 8,
    proposals_per_batch: int = 4096,
    progress: bool = False,
) -> dict[str, Any]:
    """Detect actions in every video of ``dataset`` with one model per stream (``models``: stream ->
    Detector, or a :class:`SplitDetector`); ``video_scores``: video id -> [C] class scores to multiply
    in, or None. Returns the ActivityNet results JSON object (CONTRACT §2)."""
    predictions = predict_streams(models, list(dataset), coder, infer_cfg, extend_ratio=extend_ratio,
                                  videos_per_batch=videos_per_batch, proposals_per_batch=proposals_per_batch,
                                  progress=progress)
    with contextlib.closing(predictions):  # an error in the fusion half closes the progress bar too
        return results_json({v.id: video_detections(v, p, infer_cfg, classes, video_scores) for v, p in predictions})
