"""Training the built-in video-level classifier (:class:`dcltal.model.video_classifier.VideoClassifier`)
and scoring videos with it. Settings: the config's ``video_classifier`` section.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
import torch
from tqdm import tqdm

from dcltal.data.features import inverse_channel_rms
from dcltal.engine.detection.fusion import fuse_streams
from dcltal.model.video_classifier import VideoClassifier


def _targets(labels: Sequence[np.ndarray], num_classes: int) -> torch.Tensor:
    targets = torch.zeros(len(labels), num_classes)  # [V, C] multi-hot
    for v, lab in enumerate(labels):
        targets[v, torch.as_tensor(np.asarray(lab, dtype=np.int64))] = 1.0
    return targets


def _subsample(x: torch.Tensor, limit: int, generator: torch.Generator) -> torch.Tensor:
    """At most ``limit`` snippets of ``x`` [T, D], drawn without replacement, kept in time order."""
    if x.shape[0] <= limit:
        return x
    keep = torch.randperm(x.shape[0], generator=generator)[:limit].sort().values
    return x[keep.to(x.device)]


def train_video_classifier(
    features: Sequence[dict[str, np.ndarray]],
    labels: Sequence[np.ndarray],
    num_classes: int,
    *,
    epochs: int = 40,
    lr: float = 1e-2,
    weight_decay: float = 1e-4,
    batch_videos: int = 16,
    max_snippets: int = 512,
    hidden: int = 128,
    dropout: float = 0.5,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> dict[str, dict[str, torch.Tensor]]:
    """Train one classifier per stream on the training videos and return ``{stream: state_dict}``
    (CPU tensors), the checkpoint's ``video_classifier`` entry.

    features: one ``{stream: [T, D] array}`` a video; labels: each video's ground-truth class indices
    (annotation indices 0..C-1, repeats allowed); the keywords: the config's ``video_classifier``
    section (:func:`settings`). Adam, full passes over shuffled videos; cheap (a few
    seconds on the synthetic benchmark, about a minute per stream at THUMOS14 scale on a CPU).
    """
    targets = _targets(labels, num_classes).to(device)  # [V, C]
    states = {}
    for stream in features[0]:
        torch.manual_seed(seed)
        data = [torch.as_tensor(f[stream], dtype=torch.float32, device=device) for f in features]
        model = VideoClassifier(data[0].shape[1], num_classes, hidden, dropout).to(device)
        model.input_scale.copy_(torch.from_numpy(inverse_channel_rms(f[stream] for f in features)))
        optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
        generator = torch.Generator().manual_seed(seed)
        model.train()
        for _ in tqdm(range(epochs), desc=f"video classifier ({stream})", disable=not progress, leave=False):
            order = torch.randperm(len(data), generator=generator).tolist()
            for i in range(0, len(order), batch_videos):
                batch = order[i : i + batch_videos]
                parts = [_subsample(data[v], max_snippets, generator) for v in batch]
                logits = model(torch.cat(parts), [p.shape[0] for p in parts])  # [B, C]
                loss = model.loss(logits, targets[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        states[stream] = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return states


def settings(cfg) -> dict:
    """:func:`train_video_classifier`'s keywords from the config's ``video_classifier`` section."""
    return dataclasses.asdict(cfg.video_classifier)


def load_video_classifiers(
    states: dict[str, dict[str, torch.Tensor]], device: str | torch.device = "cpu"
) -> dict[str, VideoClassifier]:
    return {s: VideoClassifier.from_state_dict(sd).to(device).eval() for s, sd in states.items()}


@torch.no_grad()
def stream_probabilities(classifiers: dict[str, VideoClassifier],
                         features: dict[str, np.ndarray | torch.Tensor]) -> dict[str, torch.Tensor]:
    """{stream: [C]} each stream's class probabilities for one video (softmax, or sigmoid for a
    classifier of the old kind)."""
    probs = {}
    for stream, model in classifiers.items():
        x = torch.as_tensor(features[stream], dtype=torch.float32, device=next(model.parameters()).device)
        probs[stream] = model.probabilities(model(x)).cpu()
    return probs


def fuse_probabilities(probs: dict[str, torch.Tensor], weights: dict[str, float]) -> np.ndarray:
    """[C] the streams' probabilities averaged with the stream weights."""
    return fuse_streams(probs, weights).numpy().astype(np.float64)


def video_level_scores(
    classifiers: dict[str, VideoClassifier], features: dict[str, np.ndarray | torch.Tensor], weights: dict[str, float]
) -> np.ndarray:
    """[C] the video's class probabilities: each stream's, averaged with the stream weights."""
    return fuse_probabilities(stream_probabilities(classifiers, features), weights)
