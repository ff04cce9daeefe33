"""A trained checkpoint, ready to detect: ``dcltal.load(CKPT).predict(features, proposals)``.

The checkpoint (one file, loaded with ``weights_only=True``; layout in docs/architecture.md)
carries each stream's Detector, the config it was trained with, the class names, the regression
statistics and, where ``dcltal train`` fitted one, the built-in video-level classifier.
"""
from __future__ import annotations

import os
from dataclasses import fields, replace
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np
import torch

from dcltal.config import Config, InferConfig, config_from_dict, with_overrides
from dcltal.data.grid import TimeGrid
from dcltal.data.proposals import repair_proposals
from dcltal.engine.checkpoint import load_checkpoint
from dcltal.engine.device import resolve_device
from dcltal.data.videos import VideoRecord, load_videos
from dcltal.engine.detection.inference import detect
from dcltal.engine.detection.fusion import resolve_weights
from dcltal.engine.detection.video_classifier import load_video_classifiers, video_level_scores
from dcltal.errors import RepairLog, UserError
from dcltal.model.split_detector import SplitDetector

class Predictor:
    def __init__(self, cfg: Config, classes: list[str], models: dict[str, torch.nn.Module], coder,
                 video_classifiers: dict | None = None, source: str = "checkpoint",
                 held_out_weights: dict[str, float] | None = None):
        self.cfg, self.classes, self.models, self.coder = cfg, classes, models, coder
        self.video_classifiers = video_classifiers
        self.source = source
        self.held_out_weights = held_out_weights  # chosen by training's validation (infer.stream_weights: held_out)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str | torch.device = "auto") -> "Predictor":
        from dcltal.model.detector import Detector
        from dcltal.ops.segment_coder import SegmentCoder

        ckpt = load_checkpoint(path)
        if "streams" not in ckpt:  # model.kind: proposals writes "proposals" in its place
            raise UserError(f"checkpoint {path} holds the built-in proposal generator (model.kind: proposals), not a "
                            f"detector; make proposals with it (dcltal propose CONFIG --checkpoint {path} --out "
                            "PROPOSALS.json, then data.proposals=PROPOSALS.json) and detect with a detector's checkpoint")
        try:
            cfg = config_from_dict(ckpt["config"])
        except UserError as e:
            raise UserError(f"checkpoint {path}: its stored config: {e}") from None
        dev = device if isinstance(device, torch.device) else resolve_device(device)
        models = {}
        for stream, entry in ckpt["streams"].items():
            model = Detector.from_config(cfg.model, int(entry["dim"]), len(ckpt["classes"]))
            try:
                model.load_state_dict(entry["state_dict"])
            except RuntimeError:  # an edited config.yaml or classes.txt of an exported model
                raise UserError(f"checkpoint {path}: the {stream} weights do not fit the model its config and "
                                f"{len(ckpt['classes'])} classes describe; export the model again") from None
            models[stream] = model.to(dev).eval()
        coder = SegmentCoder(**ckpt["coder"])
        vc = ckpt.get("video_classifier")
        return cls(cfg, list(ckpt["classes"]), models, coder, load_video_classifiers(vc, dev) if vc else None, str(path),
                   ckpt.get("stream_weights"))

    def check_streams(self, streams: Mapping[str, Sequence[int]]) -> None:
        """A UserError unless ``data.streams`` (stream -> [first column, end column]) names each of this
        checkpoint's streams with its model's feature width (other streams are not read)."""
        missing = sorted(set(self.models) - set(streams))
        if missing:
            raise UserError(f"data.streams names {sorted(streams)}, checkpoint {self.source} has streams "
                            f"{sorted(self.models)}; add {missing} (the names it was trained with)")
        for name in self.models:
            lo, hi = streams[name]
            dim = self.models[name].dim
            if hi - lo != dim:
                raise UserError(f"data.streams.{name} gives {hi - lo} feature columns, checkpoint {self.source} "
                                f"expects {dim}; use the features (and column ranges) it was trained on")

    def with_localization_from(self, other: "Predictor") -> "Predictor":
        """Classification from this checkpoint's models, completeness and regression from ``other``'s
        (paper Table 3); the video-level classifier stays this one's."""
        if other.classes != self.classes or set(other.models) != set(self.models):
            raise UserError(f"checkpoints {self.source} and {other.source} differ in classes or streams; "
                            "--cls-from and --loc-from need two models of the same data")
        models = {s: SplitDetector(m, other.models[s]) for s, m in self.models.items()}
        return Predictor(self.cfg, self.classes, models, other.coder, self.video_classifiers, self.source,
                         self.held_out_weights)

    def infer_settings(self, infer_cfg):
        """``infer_cfg`` with concrete ``stream_weights``: ``held_out`` becomes the weights this
        checkpoint's validation chose, or those it was trained with (fusion.resolve_weights)."""
        weights = resolve_weights(infer_cfg.stream_weights, self.held_out_weights, list(self.models), self.source,
                                  self.cfg.infer.stream_weights)
        return replace(infer_cfg, stream_weights=weights)

    # -- video-level scores -------------------------------------------------------------------
    def builtin_video_scores(self, features: Mapping[str, np.ndarray], weights: Mapping[str, float]) -> np.ndarray:
        if not self.video_classifiers:
            raise UserError(f"checkpoint {self.source} has no built-in video-level classifier; "
                            "set infer.video_scores=null or name a scores file")
        return video_level_scores(self.video_classifiers, features, weights)

    def video_scores(self, videos: Iterable[VideoRecord], infer_cfg) -> dict[str, np.ndarray] | None:
        """{video: [C]} per ``infer.video_scores``: builtin, null (none) or an external file."""
        source = infer_cfg.video_scores
        if source is None:
            return None
        infer_cfg = self.infer_settings(infer_cfg)
        videos = list(videos)
        if source == "builtin":
            return {v.id: self.builtin_video_scores(v.features, infer_cfg.stream_weights) for v in videos}
        from dcltal.data.video_scores import load_video_scores

        return load_video_scores(source, [v.id for v in videos], self.classes, infer_cfg.video_score_classes)

    # -- detection ----------------------------------------------------------------------------
    def detect(self, videos: Iterable[VideoRecord], cfg: Config | None = None, progress: bool = False) -> dict:
        """The ActivityNet results JSON object for ``videos``, with ``cfg.infer`` (default: the
        checkpoint's) choosing fusion, video-level scores and NMS."""
        infer_cfg = self.infer_settings((cfg or self.cfg).infer)
        videos = list(videos)
        return detect(self.models, videos, self.coder, infer_cfg, self.classes, self.video_scores(videos, infer_cfg),
                      extend_ratio=self.cfg.model.extend_ratio, progress=progress)

    def infer_config(self, overrides: Mapping[str, Any]):
        """The checkpoint's ``infer`` settings with ``overrides`` (predict()'s keywords), checked as
        the config's keys are; a UserError names the bad key, or lists the keywords for an unknown one."""
        known = [f.name for f in fields(InferConfig)]
        unknown = sorted(set(overrides) - set(known))
        if unknown:
            raise UserError(f"predict(): unknown keyword {unknown[0]!r}; it takes duration, fps, video_level and "
                            f"the infer.* keys: {', '.join(known)}")
        try:
            return with_overrides(self.cfg, "infer", dict(overrides)).infer
        except UserError as e:
            raise UserError(f"predict(): {e}") from None

    def predict(self, features, proposals, *, duration: float | None = None, fps: float | None = None,
                video_level=None, **infer_overrides) -> list[dict]:
        """Detections in one video: ``features`` {stream: [T, D]} or one [T, C] array (split by the
        checkpoint's ``data.streams``), ``proposals`` [N, 2] (or [N, 3] with a score) in seconds.
        ``infer_overrides`` replace keys of ``cfg.infer`` (e.g. ``nms="soft"``,
        ``video_scores=None``), checked as the config's keys are (:meth:`infer_config`). Video-level class scores: ``video_level`` [C] where given, else per
        ``infer.video_scores``: the built-in classifier, or none. Returns [{label, score, segment}],
        best first."""
        data = self.cfg.data
        if not isinstance(features, Mapping):
            arr = np.asarray(features, dtype=np.float32)
            if arr.ndim != 2 or arr.shape[1] < max(hi for _, hi in data.streams.values()):
                raise UserError(f"features of shape {arr.shape}: expected [T, C] covering data.streams {data.streams}")
            features = {s: arr[:, lo:hi] for s, (lo, hi) in data.streams.items()}
        missing = set(self.models) - set(features)
        if missing:
            raise UserError(f"features lack stream(s) {sorted(missing)}; the checkpoint has {sorted(self.models)}")
        proposals = np.asarray(proposals, dtype=np.float64)
        if proposals.size == 0:
            proposals = proposals.reshape(0, 2)
        if proposals.ndim != 2 or proposals.shape[1] not in (2, 3):
            raise UserError(f"proposals of shape {proposals.shape}: expected [N, 2] (start, end) seconds")
        grid = TimeGrid(fps or data.fps, data.feature_stride, data.feature_window)
        infer_cfg = self.infer_settings(self.infer_config(infer_overrides))
        features = {s: np.asarray(features[s], dtype=np.float32) for s in self.models}
        log = RepairLog()  # as the command line repairs proposal files: counted warnings on stderr
        span = duration if duration is not None else grid.duration(next(iter(features.values())).shape[0])
        proposals = repair_proposals(proposals.copy(), span, "video", log)
        log.report("predict() proposals")
        video = VideoRecord("video", grid, span, features, proposals)
        if video_level is None and infer_cfg.video_scores is not None:
            if infer_cfg.video_scores != "builtin":
                raise UserError("predict() reads no video-level scores file (it has no video id); pass "
                                "video_level=[C scores] or video_scores=None")
            video_level = self.builtin_video_scores(video.features, infer_cfg.stream_weights)
        scores = None if video_level is None else {"video": np.asarray(video_level, dtype=np.float64)}
        res = detect(self.models, [video], self.coder, infer_cfg, self.classes, scores,
                     extend_ratio=self.cfg.model.extend_ratio)
        return res["results"]["video"]

    def predict_many(self, videos, proposals=None, *, fps: float | None = None,
                     **infer_overrides) -> Iterator[tuple[str, list[dict]]]:
        """Detections video by video, as predict() finds them: ``(video id, detections)`` yielded
        while the later videos are still unread. ``videos``: an iterable of ``(id, features,
        proposals)``; or a directory of feature files (read as ``data.features`` is, with the
        checkpoint's ``data.streams``) with ``proposals`` a proposal file or directory (CONTRACT §1)
        for its videos, durations from the feature lengths. ``fps`` defaults to ``data.fps``. The
        keywords are checked at once, before any video is read."""
        self.infer_config(infer_overrides)
        repairs = None
        if isinstance(videos, (str, os.PathLike)):
            if proposals is None:
                raise UserError(f"predict_many({str(videos)!r}) needs proposals=PATH: a BSN CSV directory, "
                                "an ActivityNet proposal JSON or an SSN list for its videos")
            repairs = RepairLog()
            cfg = with_overrides(self.cfg, "data", {"features": str(videos), "proposals": str(proposals),
                                                   "annotations": None, "fps": fps or self.cfg.data.fps})
            stored = load_videos(cfg.data, None, avoid=False, repairs=repairs)
            items = ((v.id, v.features, v.proposals, v.duration, v.grid.fps) for v in stored)
        elif proposals is not None:
            raise UserError("predict_many(): proposals=PATH goes with a feature directory; in a list, give "
                            "each video as (id, features, proposals)")
        else:
            items = (_item(x, fps) for x in videos)
        return self._predict_each(items, infer_overrides, repairs)

    def _predict_each(self, items: Iterable[tuple], overrides: Mapping[str, Any],
                      repairs: RepairLog | None) -> Iterator[tuple[str, list[dict]]]:
        for vid, features, proposals, duration, fps in items:
            yield vid, self.predict(features, proposals, duration=duration, fps=fps, **overrides)
        if repairs is not None:
            repairs.report("predict_many() features")


def _item(item, fps: float | None) -> tuple:
    """An ``(id, features, proposals)`` of predict_many()'s list, as its directory's items are."""
    if not isinstance(item, (tuple, list)) or len(item) != 3:
        raise UserError(f"predict_many(): expected (id, features, proposals) items, got a {type(item).__name__}")
    vid, features, proposals = item
    return str(vid), features, proposals, None, fps
