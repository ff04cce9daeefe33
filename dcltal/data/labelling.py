"""Training samples of a video (DESIGN §2, SSN / P-GCN): the proposal labeller and the per-video sampler.

Labelling (once per video, :func:`label_proposals`), with t = a proposal's best tIoU with any ground
truth and o = the largest fraction of the proposal inside one ground truth:

- foreground: ``t > fg_iou`` (0.7); the ground-truth segments themselves are added as proposals, so
  every action has at least one; matched to the ground truth of best tIoU;
- incomplete: ``t < incomplete_iou`` (0.3) and ``o > incomplete_overlap`` (1%): a part of an action,
  or an action with much background; matched to the ground truth it lies most inside;
- background: ``t < bg_iou`` (0.01) and not incomplete (so at most 1% of it inside any action);
- everything else is not sampled.

Sampling (each epoch, :class:`ProposalSampler`): per video ``samples_per_video x sample_scale``
proposals of the three kinds (1:6:1 x 4 by default), without replacement where a pool is large enough,
with replacement where it is short, none where it is empty. The roles of each kind in Eq. 15:

| kind       | classification (labels) | completeness (Eq. 13) | regression (Eq. 14) |
|------------|-------------------------|-----------------------|---------------------|
| foreground | its class               | complete (+1)         | yes                 |
| incomplete | not a sample, except the *incomplete positives* below | incomplete (-1) | no  |
| background | background (0)          | not a sample          | no                  |

Incomplete positives (the paper, §3.5: "we appropriately add some incomplete proposals as positive
samples"): of the sampled incomplete proposals, those at least ``incomplete_positive_overlap`` inside
their ground truth (default 0.7: the proposal's content is mostly the action, so its class is right
even if its boundaries are not) are classification positives of that class, the most-inside first, at
most ``incomplete_positive_fraction`` of the incomplete samples (default 0.25: 6 of 24 a video, so
they help classification see parts of actions without outweighing the 4 foreground samples' complete
view by much). Completeness treats every incomplete proposal as a negative.
"""
from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import torch

from dcltal.data.segments import overlap_fraction, pairwise_tiou


@dataclass
class Targets:
    """What the loss of Eq. 15 (model/losses.py) learns, a row per sampled proposal (:func:`make_targets`)."""

    labels: torch.Tensor  # [N] long: class for the classification loss, 0 = background, -1 = not a sample
    completeness: torch.Tensor  # [N] long: 1 complete (foreground), 0 incomplete, -1 not a sample (background)
    action: torch.Tensor  # [N] long: class 1..C whose completeness / regression is learned; 0 = none
    regression: torch.Tensor  # [N, 2] float: coded target of the matched ground truth (see SegmentCoder)
    regression_mask: torch.Tensor  # [N] bool: foreground proposals only

    def to(self, device: torch.device | str) -> "Targets":
        return Targets(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})


FOREGROUND, INCOMPLETE, BACKGROUND, IGNORED = 0, 1, 2, -1


@dataclass
class LabelledProposals:
    """One video's training proposals, labelled once."""

    segments: np.ndarray  # [N, 2] seconds: the ground truths first, then the proposals
    kind: np.ndarray  # [N] int8: FOREGROUND, INCOMPLETE, BACKGROUND or IGNORED
    gt: np.ndarray  # [N] int64 matched ground truth (foreground: best tIoU; incomplete: most inside); -1 none
    inside: np.ndarray  # [N] float64 fraction of the proposal inside its matched ground truth
    gt_segments: np.ndarray  # [M, 2] seconds
    gt_labels: np.ndarray  # [M] int64 class index 0..C-1

    def pool(self, kind: int) -> np.ndarray:
        return np.flatnonzero(self.kind == kind)


def label_proposals(proposals: np.ndarray, gt_segments: np.ndarray, gt_labels: np.ndarray, fg_iou: float = 0.7,
                    incomplete_iou: float = 0.3, incomplete_overlap: float = 0.01,
                    bg_iou: float = 0.01) -> LabelledProposals:
    """Label ``proposals`` [N, 2+] (seconds) of a video against its ground truth [M, 2] / [M]."""
    gt_segments = np.asarray(gt_segments, dtype=np.float64).reshape(-1, 2)
    segments = np.concatenate([gt_segments, np.asarray(proposals, dtype=np.float64).reshape(len(proposals), -1)[:, :2]])
    n = len(segments)
    if len(gt_segments) == 0:
        return LabelledProposals(segments, np.full(n, BACKGROUND, np.int8), np.full(n, -1, np.int64), np.zeros(n),
                                 gt_segments, np.asarray(gt_labels, dtype=np.int64))
    tiou = pairwise_tiou(segments, gt_segments)  # [N, M]
    inside = overlap_fraction(segments, gt_segments)  # [N, M]
    best_t, best_o = tiou.max(1), inside.max(1)  # [N] each
    fg = best_t > fg_iou
    incomplete = ~fg & (best_t < incomplete_iou) & (best_o > incomplete_overlap)
    background = ~fg & ~incomplete & (best_t < bg_iou)
    kind = np.full(n, IGNORED, np.int8)
    kind[fg], kind[incomplete], kind[background] = FOREGROUND, INCOMPLETE, BACKGROUND
    gt = np.where(fg, tiou.argmax(1), np.where(incomplete, inside.argmax(1), -1))
    matched = np.take_along_axis(inside, np.maximum(gt, 0)[:, None], 1)[:, 0]
    return LabelledProposals(segments, kind, gt.astype(np.int64), np.where(gt >= 0, matched, 0.0),
                             gt_segments, np.asarray(gt_labels, dtype=np.int64))


@dataclass
class Sample:
    """One video's sampled proposals and their roles (numpy, before coding)."""

    segments: np.ndarray  # [K, 2] seconds
    labels: np.ndarray  # [K] classification class (1..C), 0 background, -1 not a sample
    completeness: np.ndarray  # [K] 1 complete, 0 incomplete, -1 not a sample
    action: np.ndarray  # [K] class 1..C for completeness / regression, 0 none
    gt_segments: np.ndarray  # [K, 2] matched ground truth (the proposal itself where none)
    regression_mask: np.ndarray  # [K] bool: foreground


def _draw(pool: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` members of ``pool``: without replacement where it has enough, else with."""
    if len(pool) == 0 or count == 0:
        return pool[:0]
    return rng.choice(pool, size=count, replace=len(pool) < count)


class ProposalSampler:
    def __init__(self, counts=(4, 24, 4), incomplete_positive_overlap: float = 0.7,
                 incomplete_positive_fraction: float = 0.25):
        self.counts = tuple(int(c) for c in counts)  # foreground, incomplete, background per video
        self.positive_overlap = incomplete_positive_overlap
        self.positive_fraction = incomplete_positive_fraction

    @classmethod
    def from_config(cls, train_cfg) -> "ProposalSampler":
        counts = [c * train_cfg.sample_scale for c in train_cfg.samples_per_video]
        return cls(counts, train_cfg.incomplete_positive_overlap, train_cfg.incomplete_positive_fraction)

    def sample(self, video: LabelledProposals, rng: np.random.Generator) -> Sample:
        picks = [_draw(video.pool(k), c, rng) for k, c in zip((FOREGROUND, INCOMPLETE, BACKGROUND), self.counts)]
        fg, inc, bg = picks
        idx = np.concatenate(picks)  # [K]
        k = len(idx)
        gt = video.gt[idx]
        action = np.where(gt >= 0, video.gt_labels[np.maximum(gt, 0)] + 1, 0) if len(video.gt_labels) else np.zeros(k, np.int64)
        labels = np.full(k, -1, np.int64)
        labels[: len(fg)] = action[: len(fg)]
        labels[len(fg) + len(inc):] = 0
        # incomplete positives: mostly inside their action, the most inside first, capped
        inside = video.inside[inc]
        eligible = np.flatnonzero(inside >= self.positive_overlap)
        eligible = eligible[np.argsort(-inside[eligible], kind="stable")]
        chosen = eligible[: int(round(self.positive_fraction * len(inc)))] + len(fg)
        labels[chosen] = action[chosen]
        completeness = np.concatenate([np.ones(len(fg)), np.zeros(len(inc)), -np.ones(len(bg))]).astype(np.int64)
        segments = video.segments[idx]  # [K, 2]
        gt_segments = np.where((gt >= 0)[:, None], video.gt_segments[np.maximum(gt, 0)] if len(video.gt_segments)
                               else segments, segments)
        mask = np.zeros(k, bool)
        mask[: len(fg)] = True
        return Sample(segments, labels, completeness, action.astype(np.int64), gt_segments, mask)


def make_targets(samples: list[Sample], coder) -> Targets:
    """The :class:`Targets` of several videos' samples, in order; regression coded by
    ``coder`` (a SegmentCoder) against each proposal's matched ground truth."""
    cat = lambda name: np.concatenate([getattr(s, name) for s in samples])  # noqa: E731
    proposals = torch.from_numpy(cat("segments"))  # [N, 2] float64
    regression = coder.encode(proposals, torch.from_numpy(cat("gt_segments"))).float()  # [N, 2]
    mask = torch.from_numpy(cat("regression_mask"))
    return Targets(labels=torch.from_numpy(cat("labels")), completeness=torch.from_numpy(cat("completeness")),
                   action=torch.from_numpy(cat("action")), regression=torch.where(mask[:, None], regression, 0.0),
                   regression_mask=mask)
