"""The built-in video-level classifier: which actions a video contains (multi-label); trained by
engine/detection/video_classifier.py.

The paper multiplies in UntrimmedNet's video-level class scores (§4, "as a common practice").
This is a cheap stand-in trained on the same snippet features, one per stream: a snippet-level
MLP gives class logits per snippet, and a video's logit for a class is the mean of its top
``T / 8`` snippet logits (the multiple-instance pooling of UntrimmedNet's and W-TALC's lineage, so
that a short action in a long video still counts). Each channel of the input is first divided by its
RMS over the training videos (as the detector's ``model.input_norm: rms``; on the accuracy zoo's
reference setting this lifted the classifier's test mAP from 0.775 to 0.840, docs/training.md).
Trained with the softmax cross-entropy against the video's classes sharing the target equally (as
UntrimmedNet's softmax); at test time the streams' softmax probabilities are averaged with the same
RGB:Flow weights as the detections. (Classifiers trained before with a sigmoid a class and binary
cross-entropy, ``exclusive`` false in their state, keep their sigmoid: 200 such sigmoids with one
positive each learnt to say no, 3% top-1 on the zoo's ActivityNet-like setting against 90% now.)
"""
from __future__ import annotations

import torch
from torch import nn


class VideoClassifier(nn.Module):
    """Snippet MLP + top-k mean pooling over time -> [C] video-level class logits."""

    def __init__(self, dim: int, num_classes: int, hidden: int = 128, dropout: float = 0.5, topk_ratio: float = 1 / 8,
                 exclusive: bool = True):
        super().__init__()
        self.topk_ratio = topk_ratio
        self.register_buffer("exclusive", torch.tensor(exclusive))  # softmax over classes; False: a sigmoid each
        self.register_buffer("input_scale", torch.ones(dim))  # [D] 1 / each channel's RMS over the training videos
        self.snippet = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, num_classes)
        )

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor]) -> "VideoClassifier":
        hidden, dim = state["snippet.1.weight"].shape
        model = cls(dim, state["snippet.4.weight"].shape[0], hidden)
        # classifiers saved before the input scale and the softmax: ones, and their sigmoids
        model.load_state_dict({"input_scale": torch.ones(dim), "exclusive": torch.tensor(False), **state})
        return model

    def forward(self, features: torch.Tensor, lengths: list[int] | None = None) -> torch.Tensor:
        """features [T, D] of one video -> [C] logits; or several videos packed end to end
        ([sum T_v, D] with ``lengths`` [T_v]) -> [V, C], in one pass of the snippet MLP."""
        logits = self.snippet(features * self.input_scale)  # [S, C]
        parts = logits.split(lengths or [features.shape[0]])
        # pad with -inf so padding sorts last and never enters a video's top k
        padded = nn.utils.rnn.pad_sequence(parts, batch_first=True, padding_value=float("-inf"))  # [V, T_max, C]
        ranked = padded.sort(dim=1, descending=True).values
        k = torch.tensor([max(1, int(p.shape[0] * self.topk_ratio)) for p in parts], device=logits.device)  # [V]
        in_top = torch.arange(ranked.shape[1], device=logits.device)[None, :] < k[:, None]  # [V, T_max]
        pooled = ranked.masked_fill(~in_top[:, :, None], 0.0).sum(dim=1) / k[:, None]  # [V, C]
        return pooled[0] if lengths is None else pooled

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """[B, C] logits against [B, C] multi-hot targets: softmax cross-entropy with the video's classes
        sharing the target (``exclusive``), else binary cross-entropy a class."""
        if bool(self.exclusive):
            return nn.functional.cross_entropy(logits, targets / targets.sum(1, keepdim=True).clamp_min(1))
        return nn.functional.binary_cross_entropy_with_logits(logits, targets)

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.softmax(-1) if bool(self.exclusive) else torch.sigmoid(logits)
