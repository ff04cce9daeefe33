"""Training the detector through the generic loop (engine/trainer.py): one :class:`DetectorTask` a stream.

The tasks of all streams share the training videos, their labelled proposals (data/labelling.py), the
held-out validation videos and the SegmentCoder fitted on the training split's foreground proposals.
"""
from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch import nn

from dcltal.data.features import inverse_channel_rms
from dcltal.data.labelling import (FOREGROUND, LabelledProposals, ProposalSampler, Targets, label_proposals,
                                   make_targets)
from dcltal.data.videos import VideoDataset, split_videos
from dcltal.engine.checkpoint import cpu_state
from dcltal.engine.detection.health import ActivityProbe, HealthCheck, LabelCounter, active_shares, completeness_spread
from dcltal.engine.detection.fusion import HELD_OUT, choose_weights
from dcltal.engine.detection.video_classifier import (fuse_probabilities, load_video_classifiers,
                                                       stream_probabilities)
from dcltal.errors import UserError
from dcltal.model.batch import PackedBatch, pack_videos
from dcltal.ops.segment_coder import SegmentCoder

log = logging.getLogger(__name__)


def label_videos(videos: VideoDataset, train_cfg) -> list[LabelledProposals]:
    tc = train_cfg
    return [label_proposals(v.proposals, v.segments, v.labels, tc.fg_iou, tc.incomplete_iou, tc.incomplete_overlap,
                            tc.bg_iou) for v in videos]


def fit_coder(kind: str, labelled: list[LabelledProposals]) -> SegmentCoder:
    """The coder normalised by the training split's foreground proposals (ground truths included)."""
    fg = [(v.segments[v.pool(FOREGROUND)], v.gt_segments[v.gt[v.pool(FOREGROUND)]]) for v in labelled]
    proposals = np.concatenate([p for p, _ in fg] or [np.zeros((0, 2))])
    targets = np.concatenate([g for _, g in fg] or [np.zeros((0, 2))])
    return SegmentCoder.fit(kind, torch.from_numpy(proposals), torch.from_numpy(targets))


class DetectorTask:
    """One stream's detector for the generic loop: build the model, make batches of sampled
    proposals, compute Eq. 15, validate by mAP on the held-out videos."""

    score_name = "mAP"

    def __init__(self, cfg, stream: str, train: VideoDataset, val: VideoDataset, labelled: list[LabelledProposals],
                 coder: SegmentCoder):
        self.cfg, self.stream, self.train, self.val = cfg, stream, train, val
        self.labelled, self.coder = labelled, coder
        self.sampler = ProposalSampler.from_config(cfg.train)
        self.dim = train[0].features[stream].shape[1]
        self.classes = train.classes
        self.val_stream_probs: dict[str, dict] | None = None  # video id -> {stream: [C]}, set by training_run
        self.probe: ActivityProbe | None = None  # the heads' ReLU activity, for the health check
        self.health = HealthCheck()
        self.labels_seen = LabelCounter(len(self.classes) + 1)

    def __len__(self) -> int:
        return len(self.train)

    def num_batches(self, indices: torch.Tensor | None) -> int:
        return math.ceil((len(self) if indices is None else len(indices)) / self.cfg.train.videos_per_batch)

    def build_model(self) -> nn.Module:
        from dcltal.model.detector import Detector

        model = Detector.from_config(self.cfg.model, self.dim, len(self.classes))
        if self.cfg.model.input_norm == "rms":
            model.set_input_scale(torch.from_numpy(inverse_channel_rms(v.features[self.stream] for v in self.train)))
        self.probe = ActivityProbe(model)
        return model

    def batches(self, generator: torch.Generator, indices: torch.Tensor | None = None) -> Iterator[tuple[PackedBatch, Targets]]:
        """Shuffled groups of ``train.videos_per_batch`` videos (of ``indices``, one process's shard,
        where given), each video with its sampled proposals. Each video's sample is drawn from its own
        seed, taken for every video in order from ``generator``: the same on every process, so how
        the videos are split among processes does not change what a video trains on."""
        video_seeds = torch.randint(2**62, (len(self),), generator=generator).tolist()
        order = torch.arange(len(self)) if indices is None else indices
        order = order[torch.randperm(len(order), generator=generator)].tolist()
        per = self.cfg.train.videos_per_batch
        for lo in range(0, len(order), per):
            chunk = order[lo : lo + per]
            samples = [self.sampler.sample(self.labelled[i], np.random.default_rng(video_seeds[i])) for i in chunk]
            feats = [torch.from_numpy(np.asarray(self.train[i].features[self.stream], dtype=np.float32)) for i in chunk]
            batch = pack_videos(feats, [s.segments for s in samples], [self.train[i].grid for i in chunk],
                                self.cfg.model.extend_ratio)
            yield batch, make_targets(samples, self.coder)

    def losses(self, model: nn.Module, batch: tuple[PackedBatch, Targets], generator=None) -> dict[str, torch.Tensor]:
        """Eq. 15 of one batch, per-video means over this process's videos (DDP averages the
        processes' gradients, so equal shards give the unsplit batch's gradient)."""
        packed, targets = batch
        device = next(model.parameters()).device
        packed, targets = packed.to(device), targets.to(device)
        out = model(packed)  # through DistributedDataParallel where wrapped, for its gradient hooks
        tc = self.cfg.train
        terms = getattr(model, "module", model).losses(out, targets, packed, tc.lambda_reg, tc.lambda_com,
                                                       tc.ohem_ratio, num_videos=packed.num_videos)
        self.labels_seen.add(targets.labels)
        return {**terms, **active_shares(self.probe), **completeness_spread(out.completeness, targets)}

    def check_health(self, epoch: int, row: dict[str, float]) -> None:
        """Warn once if a head of this stream looks dead (engine/detection/health.py); adds ``health_cls_entropy``
        (the epoch's label entropy) and ``health_dead`` to ``row``."""
        entropy = self.labels_seen.entropy()
        if entropy is not None:
            row["health_cls_entropy"] = entropy
        self.health(epoch, self.stream, row)

    def validate(self, model: nn.Module) -> dict[str, float]:
        """mAP (averaged over ``eval.tiou``) of this stream alone on the held-out videos."""
        return validate_detectors({self.stream: model}, self.val, self.coder, self.cfg, self.val_stream_probs)

    def checkpoint_entry(self, model: nn.Module) -> dict:
        return {"dim": self.dim, "state_dict": cpu_state(model)}


def validate_detectors(models: dict[str, nn.Module], val: VideoDataset, coder: SegmentCoder, cfg,
                       stream_probs: dict[str, dict] | None = None) -> dict[str, float]:
    """{"mAP": average over eval.tiou, "mAP@t": ...} of the fused ``models`` on ``val``, with the
    video-level scores (``stream_probs``: video id -> {stream: [C]}, the built-in classifier's)
    fused and multiplied in where given, as inference does (without them validation chose a
    checkpoint 18 points worse on the test split: docs/training.md); {} without videos. With
    ``infer.stream_weights: held_out`` and several models, each candidate of fusion.weight_candidates
    is scored and the best one's mAP returned, its weights as ``weight_<stream>``."""
    from dcltal.data.annotations import Annotations, Video
    from dcltal.engine.detection.inference import predict_streams, results_json, video_detections
    from dcltal.eval import evaluate_results

    if not len(val) or not any(len(v.segments) for v in val):
        return {}
    infer_cfg = dataclasses.replace(cfg.infer, video_scores=None)
    predictions = list(predict_streams(models, list(val), coder, infer_cfg, extend_ratio=cfg.model.extend_ratio,
                                       videos_per_batch=cfg.train.videos_per_batch))
    gt = Annotations({v.id: Video(v.id, "val", v.duration, v.grid.fps, v.segments, v.labels) for v in val}, val.classes)

    def evaluate(weights: dict[str, float]) -> dict:
        fused = dataclasses.replace(infer_cfg, stream_weights=weights)
        level = None if stream_probs is None else {vid: fuse_probabilities(p, weights) for vid, p in stream_probs.items()}
        results = results_json({v.id: video_detections(v, p, fused, val.classes, level) for v, p in predictions})
        return evaluate_results(gt, results, "val", cfg.eval.tiou, cfg.eval.protocol, source="validation detections")

    chosen = {}
    if cfg.infer.stream_weights != HELD_OUT:
        ev = evaluate(cfg.infer.stream_weights)
    elif len(models) > 1:
        chosen, ev = choose_weights(list(models), evaluate, lambda e: e["average_mAP"])
    else:  # one stream: nothing to weigh; the video-level scores of every stream equally
        ev = evaluate({s: 1.0 for s in (next(iter(stream_probs.values())) if stream_probs else models)})
    out = {"mAP": float(ev["average_mAP"])}
    out.update({f"mAP@{t:g}": float(m) for t, m in zip(ev["tiou"], ev["mAP"])})
    out.update({f"weight_{s}": float(w) for s, w in chosen.items()})
    return out


def detector_tasks(cfg, progress: bool = False) -> tuple[dict[str, DetectorTask], VideoDataset, SegmentCoder]:
    """One task a stream of ``data.streams``, on the training subset less the held-out videos;
    also the whole training subset and the fitted coder."""
    videos = VideoDataset.from_config(cfg, cfg.data.train_subset, progress=progress)
    if not len(videos):
        raise UserError(f"no training videos in subset {cfg.data.train_subset} of {cfg.data.annotations}")
    train_idx, val_idx = split_videos(len(videos), cfg.train.val_fraction, cfg.train.seed)
    train, val = videos.subset(train_idx), videos.subset(val_idx)
    labelled = label_videos(train, cfg.train)
    if not any(len(v.pool(FOREGROUND)) for v in labelled):
        raise UserError(f"no action instances in the training videos of {cfg.data.annotations}; "
                        f"check data.train_subset ({cfg.data.train_subset})")
    coder = fit_coder(cfg.model.regression, labelled)
    tasks = {s: DetectorTask(cfg, s, train, val, labelled, coder) for s in cfg.data.streams}
    return tasks, videos, coder


def training_run(cfg, work_dir: Path, ctx, resume: bool, progress: bool, video_classifier: dict | None = None):
    """The generic loop's (tasks, Layout) for the detector: one task a stream; the checkpoint carries
    the coder and, where ``infer.video_scores`` is builtin, the video-level classifier, trained first
    on the detector's training videos (``video_classifier``: states already trained on the same split)
    so that validation scores the held-out videos as inference will the test videos."""
    from dcltal.engine.trainer import Layout, checkpoint_fields, resumed_checkpoint

    tasks, videos, coder = detector_tasks(cfg, progress=progress and ctx.is_main)
    first = next(iter(tasks.values()))
    fields = {**checkpoint_fields(cfg, videos.classes), "coder": coder.state(), "video_classifier": None}
    resumed = resumed_checkpoint(work_dir, resume)
    if cfg.infer.stream_weights == HELD_OUT and resumed and resumed.get("stream_weights"):  # until validation chooses again
        fields["stream_weights"] = resumed["stream_weights"]
    level = None  # the held-out videos' video-level probabilities, which validation fuses in (rank 0 validates)
    if ctx.is_main and cfg.infer.video_scores == "builtin":
        states = video_classifier or (resumed.get("video_classifier") if resumed else None)
        if states is None:
            states = _fit_video_classifier(cfg, first.train, ctx.device, progress)
        fields["video_classifier"] = states
        classifiers = load_video_classifiers(states, ctx.device)
        level = {v.id: stream_probabilities(classifiers, v.features) for v in first.val}
    for task in tasks.values():
        task.val_stream_probs = level
    if cfg.infer.stream_weights == HELD_OUT and len(tasks) > 1 and not len(first.val):
        log.warning("infer.stream_weights is held_out but no training videos are held out (train.val_fraction %g): "
                    "nothing chooses the weights, inference will fuse the streams equally; hold videos out or "
                    "set the weights, e.g. --set 'infer.stream_weights={rgb: 5, flow: 6}'", cfg.train.val_fraction)

    def joint(models) -> dict[str, float]:
        """The streams' fused validation; the weights it chose (held_out) go into the checkpoints
        the trainer writes after it, as ``stream_weights``."""
        scores = validate_detectors(dict(models), first.val, coder, cfg, level)
        chosen = {s: scores[f"weight_{s}"] for s in tasks if f"weight_{s}" in scores}
        if chosen:
            fields["stream_weights"] = chosen
        return scores

    return tasks, Layout("streams", fields, joint if len(tasks) > 1 else None)


def _fit_video_classifier(cfg, videos: VideoDataset, device, progress: bool) -> dict:
    from dcltal.engine.detection import video_classifier

    feats = [{s: np.asarray(f, dtype=np.float32) for s, f in v.features.items()} for v in videos]
    return video_classifier.train_video_classifier(feats, [v.labels for v in videos], len(videos.classes),
                                                   seed=cfg.train.seed, device=device, progress=progress,
                                                   **video_classifier.settings(cfg))
