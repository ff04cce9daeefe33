"""The regression coding of Eq. 14: proposal + ground truth <-> the two numbers a model predicts.

Two codings, one home (like detectron2's ``Box2BoxTransform``):

- ``agnostic`` (the paper's default, DESIGN §2): the offsets of the start and of the end, in units of
  the proposal's length: ``((g_s - p_s) / l_p, (g_e - p_e) / l_p)``;
- ``class_specific`` (the SSN / P-GCN lineage): the centre shift in units of the proposal's length
  and the log ratio of the lengths: ``((c_g - c_p) / l_p, log(l_g / l_p))``.

Either is then normalised by the training set's statistics, ``(raw - mean) / std`` per component,
computed over the foreground proposals (:meth:`SegmentCoder.fit`) and kept in the checkpoint
(:meth:`SegmentCoder.state`), so that both components of the smooth-L1 loss (Eq. 15) work at unit
scale whatever the proposals' quality.
"""
from __future__ import annotations

from typing import Sequence

import torch

KINDS = ("agnostic", "class_specific")
MIN_LENGTH = 1e-6  # seconds: a zero-length proposal or ground truth would divide by zero


class SegmentCoder:
    def __init__(self, kind: str = "agnostic", mean: Sequence[float] = (0.0, 0.0), std: Sequence[float] = (1.0, 1.0)):
        if kind not in KINDS:
            raise ValueError(f"unknown regression coding {kind!r} (one of {KINDS})")
        if len(mean) != 2 or len(std) != 2 or min(std) <= 0:
            raise ValueError(f"mean and std need two entries each, std positive; got {mean}, {std}")
        self.kind = kind
        self.mean = [float(m) for m in mean]
        self.std = [float(s) for s in std]

    def state(self) -> dict:
        """The checkpoint's ``coder`` entry: ``SegmentCoder(**state)`` rebuilds this coder."""
        return {"kind": self.kind, "mean": list(self.mean), "std": list(self.std)}

    def _stats(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return like.new_tensor(self.mean), like.new_tensor(self.std)  # [2] each, on the input's device

    def raw(self, proposals: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """[N, 2] the coding before normalisation of ``targets`` [N, 2] relative to ``proposals`` [N, 2]."""
        p_len = (proposals[:, 1] - proposals[:, 0]).clamp_min(MIN_LENGTH)  # [N]
        if self.kind == "agnostic":
            return (targets - proposals) / p_len[:, None]
        g_len = (targets[:, 1] - targets[:, 0]).clamp_min(MIN_LENGTH)  # [N]
        shift = (targets.mean(1) - proposals.mean(1)) / p_len
        return torch.stack([shift, torch.log(g_len / p_len)], dim=1)

    def encode(self, proposals: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """[N, 2] normalised regression targets of ``targets`` [N, 2] (seconds) for ``proposals`` [N, 2]."""
        mean, std = self._stats(proposals)
        return (self.raw(proposals, targets) - mean) / std

    def decode(self, proposals: torch.Tensor, deltas: torch.Tensor) -> torch.Tensor:
        """[N, 2] segments (seconds) from ``proposals`` [N, 2] and predicted ``deltas`` [N, 2]; the
        inverse of :meth:`encode`."""
        mean, std = self._stats(deltas)
        raw = deltas * std + mean  # [N, 2]
        proposals = proposals.to(raw.dtype)
        p_len = (proposals[:, 1] - proposals[:, 0]).clamp_min(MIN_LENGTH)[:, None]  # [N, 1]
        if self.kind == "agnostic":
            return proposals + raw * p_len
        centre = proposals.mean(1, keepdim=True) + raw[:, :1] * p_len  # [N, 1]
        half = 0.5 * p_len * torch.exp(raw[:, 1:])  # [N, 1]
        return torch.cat([centre - half, centre + half], dim=1)

    @classmethod
    def fit(cls, kind: str, proposals: torch.Tensor, targets: torch.Tensor) -> "SegmentCoder":
        """A coder normalised by the mean and (population) std of the raw coding over the given
        foreground proposals [N, 2] and their ground truths [N, 2]; identity statistics where there are
        fewer than two, and a std floor so that a constant component does not divide by zero."""
        coder = cls(kind)
        if len(proposals) < 2:
            return coder
        raw = coder.raw(proposals.double(), targets.double())  # [N, 2]
        std = raw.std(0, unbiased=False).clamp_min(1e-3)
        return cls(kind, raw.mean(0).tolist(), std.tolist())
