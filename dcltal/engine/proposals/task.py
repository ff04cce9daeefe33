"""The built-in proposal generator around :class:`dcltal.model.bmn.BMN`: windows, training batches,
the training task and the checkpoint entry (docs/proposals.md; decoding: engine/proposals/decoding.py).

Windows (a config choice, ``proposals.mode``):
- ``window``: long videos (THUMOS-like) are cut into windows of ``T`` locations that slide with
  ``window_overlap``; a location is ``snippets_per_location`` snippets after the previous one, so a
  window spans ``(T - 1) * snippets_per_location`` snippets. The last window is aligned with the
  video's end; a video shorter than a window is zero-padded and its locations past the end are
  never decoded.
- ``rescale``: each video (ActivityNet-like) becomes one window of ``T`` locations spread evenly
  from its first snippet to its last, features linearly interpolated (as BMN rescales to 100).

A window is an affine map from locations to snippet coordinates, and :class:`TimeGrid` takes
snippet coordinates to seconds, so ground truth and proposals cross between the two in one place.
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, replace
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from dcltal.config import Config, ProposalsConfig, config_from_dict
from dcltal.data.bmn_targets import boundary_labels, confidence_map_labels
from dcltal.data.videos import VideoRecord, load_videos, split_videos
from dcltal.engine.checkpoint import load_checkpoint
from dcltal.engine.device import resolve_device
from dcltal.errors import UserError
from dcltal.model.bmn import BMN
from dcltal.model.bmn_losses import bmn_losses

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Window:
    first: float  # snippet coordinate of location 0
    step: float  # snippets between two locations
    length: int  # locations inside the video (the rest of the window is zero padding)

    def coords(self, temporal_scale: int) -> np.ndarray:
        """[T] snippet coordinate of each location."""
        return self.first + self.step * np.arange(temporal_scale, dtype=np.float64)

    def to_locations(self, coords: np.ndarray) -> np.ndarray:
        return (np.asarray(coords, dtype=np.float64) - self.first) / self.step


def video_windows(num_snippets: int, cfg: ProposalsConfig) -> list[Window]:
    """The windows that cover a video of ``num_snippets`` snippets."""
    T = cfg.temporal_scale
    last = num_snippets - 1  # snippet coordinate of the video's last snippet
    if cfg.mode == "rescale":
        return [Window(0.0, max(last, 1e-6) / (T - 1), T)]
    step = cfg.snippets_per_location
    span = (T - 1) * step
    hop = max(step, round(T * (1 - cfg.window_overlap)) * step)
    firsts = list(np.arange(0.0, max(last - span, 0.0) + 1e-9, hop))
    if firsts[-1] + span < last:
        firsts.append(last - span)  # align the last window with the video's end
    return [Window(float(f), step, min(T, int(math.floor((last - f) / step + 1e-9)) + 1)) for f in firsts]


def window_features(features: np.ndarray, window: Window, temporal_scale: int) -> np.ndarray:
    """[T, C] features at the window's locations: linear interpolation between snippets, zeros past
    the video's end."""
    coords = window.coords(temporal_scale)
    last = features.shape[0] - 1
    left = np.clip(np.floor(coords), 0, last).astype(np.int64)
    right = np.minimum(left + 1, last)
    w = np.clip(coords - left, 0.0, 1.0)[:, None]
    out = (1 - w) * features[left] + w * features[right]
    out[np.arange(temporal_scale) >= window.length] = 0
    return out.astype(np.float32)


def window_targets(video: VideoRecord, window: Window, cfg: ProposalsConfig) -> tuple[np.ndarray, ...]:
    """(G_S [T], G_E [T], G_C [D, T]) of a window, from the video's ground truth in seconds."""
    gt = window.to_locations(video.grid.to_index(video.segments)).reshape(-1, 2)  # [M, 2] locations
    start, end = boundary_labels(gt, cfg.temporal_scale, cfg.boundary_width)
    return start, end, confidence_map_labels(gt, cfg.temporal_scale, cfg.max_duration)


class TrainingWindows:
    """Every training window with its targets, computed once: features [W, T, C], G_S and G_E
    [W, T], G_C [W, D, T]. Windows where no proposal overlaps any ground truth are left out (BMN
    trains on windows that hold actions)."""

    def __init__(self, videos: Sequence[VideoRecord], cfg: ProposalsConfig, streams: list[str]):
        feats, starts, ends, maps = [], [], [], []
        for video in videos:
            features = video.side_by_side(streams)  # [T_v, C]
            for window in video_windows(len(features), cfg):
                start, end, iou_map = window_targets(video, window, cfg)
                if iou_map.max() <= 0:
                    continue
                feats.append(window_features(features, window, cfg.temporal_scale))
                starts.append(start), ends.append(end), maps.append(iou_map)
        if not feats:
            raise UserError("no training window holds any ground truth; check data.annotations and data.train_subset")
        self.features = torch.from_numpy(np.stack(feats))  # [W, T, C]
        self.start = torch.from_numpy(np.stack(starts))  # [W, T]
        self.end = torch.from_numpy(np.stack(ends))  # [W, T]
        self.iou_map = torch.from_numpy(np.stack(maps))  # [W, D, T]

    def __len__(self) -> int:
        return len(self.start)

    def batches(self, size: int, generator: torch.Generator, indices: torch.Tensor | None = None) -> Iterator[dict]:
        """Shuffled batches of windows (of ``indices`` where given, e.g. one process's shard)."""
        order = torch.arange(len(self)) if indices is None else indices
        order = order[torch.randperm(len(order), generator=generator)]
        for lo in range(0, len(order), size):
            pick = order[lo : lo + size]
            yield {"features": self.features[pick], "start": self.start[pick], "end": self.end[pick],
                   "iou_map": self.iou_map[pick]}


class ProposalTask:
    """What a generic training loop needs to train the generator (``dcltal train`` with
    ``model.kind: proposals``): the model, shuffled batches of windows, their losses, a validation
    score (proposal AUC of AR@AN on held-out training videos, higher is better) and the checkpoint
    entry. ``train.val_fraction`` of the training videos (chosen by ``train.seed``) are held out."""

    score_name = "AUC"

    def __init__(self, cfg: Config, train_videos: list[VideoRecord], val_videos: list[VideoRecord]):
        self.cfg, self.val_videos = cfg, val_videos
        self.streams = list(cfg.data.streams)  # side by side in this order
        self.windows = TrainingWindows(train_videos, cfg.proposals, self.streams)
        self.in_dim = sum(train_videos[0].features[s].shape[1] for s in self.streams)

    @classmethod
    def from_config(cls, cfg: Config) -> "ProposalTask":
        if cfg.data.annotations is None:
            raise UserError("config key data.annotations is not set; training the proposal generator needs ground truth")
        videos = load_videos(cfg.data, cfg.data.train_subset, proposals=False)
        if not videos:
            raise UserError(f"no training videos in subset {cfg.data.train_subset} of {cfg.data.annotations}")
        train, val = split_videos(len(videos), cfg.train.val_fraction, cfg.train.seed)
        task = cls(cfg, [videos[i] for i in train], [videos[i] for i in val])
        log.info("subset %s: %d videos (%d held out for validation), %d instances; %d training windows",
                 cfg.data.train_subset, len(videos), len(val), sum(len(v.segments) for v in videos), len(task))
        return task

    def __len__(self) -> int:
        return len(self.windows)  # what DDP processes share: windows

    def num_batches(self, indices: torch.Tensor | None) -> int:
        return math.ceil((len(self) if indices is None else len(indices)) / self.cfg.proposals.windows_per_batch)

    def build_model(self) -> BMN:
        return BMN.from_config(self.cfg.proposals, self.in_dim)

    def batches(self, generator: torch.Generator, indices: torch.Tensor | None = None) -> Iterator[dict]:
        return self.windows.batches(self.cfg.proposals.windows_per_batch, generator, indices)

    def losses(self, model: torch.nn.Module, batch: dict, generator: torch.Generator | None = None) -> dict:
        return training_losses(model, batch, self.cfg.proposals, generator)

    def validate(self, model: BMN) -> dict[str, float]:
        """AR@1/5/10/100 and AUC of the held-out videos' proposals (empty where none are held out)."""
        from dcltal.data.annotations import Annotations, Video
        from dcltal.eval.proposals import evaluate_proposals

        held = [v for v in self.val_videos if len(v.segments)]
        if not held:
            return {}
        from dcltal.engine.proposals.decoding import generate_proposals

        proposals = generate_proposals(model, held, self.cfg.proposals, self.streams)
        gt = Annotations({v.id: Video(v.id, "val", v.duration, None, v.segments, np.zeros(len(v.segments), np.int64))
                          for v in held}, classes=["action"])
        scores = evaluate_proposals(gt, proposals, "val")
        return {k: v for k, v in scores.items() if not isinstance(v, dict)}

    def checkpoint_entry(self, model: BMN) -> dict:
        return checkpoint_entry(model, self.cfg, self.in_dim)


def training_run(cfg: Config, work_dir, ctx, resume: bool, progress: bool):
    """The generic loop's (tasks, Layout) for the generator: one task, its entry at ``ckpt["proposals"]``."""
    from dcltal.engine.trainer import Layout, checkpoint_fields

    return {"proposals": ProposalTask.from_config(cfg)}, Layout(None, checkpoint_fields(cfg, ["action"]))


def training_losses(model: torch.nn.Module, batch: dict, cfg: ProposalsConfig, generator: torch.Generator | None = None) -> dict:
    """Forward a batch of windows and return the BMN losses (``total`` to minimise). ``model`` may be
    wrapped in DistributedDataParallel (the forward goes through the wrapper for its gradient hooks)."""
    dev = next(model.parameters()).device
    out = model(batch["features"].to(dev))
    valid = getattr(model, "module", model).valid
    return bmn_losses(out, batch["start"].to(dev), batch["end"].to(dev), batch["iou_map"].to(dev), valid,
                      cfg.lambda_pem, cfg.lambda_reg, cfg.cls_positive, cfg.reg_positive, generator)


# settings that shape the network or what a location means: a checkpoint's own, never the CONFIG's
ARCHITECTURE_KEYS = ("mode", "temporal_scale", "snippets_per_location", "max_duration", "num_samples",
                     "samples_per_bin", "extend_ratio", "hidden_1d", "hidden_3d", "hidden_2d", "groups")


def checkpoint_entry(model: BMN, cfg: Config, in_dim: int) -> dict:
    """The checkpoint's ``proposals`` entry: input width, streams (side by side, in order), weights."""
    return {"dim": in_dim, "streams": list(cfg.data.streams), "state_dict": model.state_dict()}


def load_generator(path: str | os.PathLike, cfg: Config, device: torch.device | None = None
                   ) -> tuple[BMN, ProposalsConfig, list[str]]:
    """The trained network of a checkpoint written with ``model.kind: proposals``, on ``device``
    (default ``train.device``); its settings (architecture from the checkpoint, decoding from ``cfg``); and the
    order in which it reads the streams side by side."""
    ckpt = load_checkpoint(path)
    entry = ckpt.get("proposals")
    if entry is None and "streams" in ckpt:
        raise UserError(f"checkpoint {path} holds a detector (model.kind: detector), not a proposal generator; detect "
                        "with it in dcltal infer, and give dcltal propose a checkpoint trained with "
                        "--set model.kind=proposals")
    if entry is None:
        raise UserError(f"checkpoint {path} holds no proposal generator; train one with --set model.kind=proposals")
    if set(entry["streams"]) != set(cfg.data.streams):
        raise UserError(f"checkpoint {path} was trained on streams {list(entry['streams'])}, but data.streams "
                        f"names {list(cfg.data.streams)}; give the same streams")
    trained = config_from_dict(ckpt["config"]).proposals
    settings = replace(cfg.proposals, **{k: getattr(trained, k) for k in ARCHITECTURE_KEYS})
    model = BMN.from_config(settings, int(entry["dim"]))
    model.load_state_dict(entry["state_dict"])
    return model.to(device or resolve_device(cfg.train.device)).eval(), settings, list(entry["streams"])
