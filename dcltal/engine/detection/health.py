"""The detector's training health check: a dead head is told in the first epochs, not after the run.

Signs of a dead head, read from one stream's epoch means (docs/training.md, "Health check"):
- completeness (Eq. 13): the hinge loss pinned at its margin with an output that no longer varies
  over the batch's samples (a constant z gives max(0, 1 - z) and max(0, 1 + z) averaging to 1 over
  balanced complete and hardest-incomplete samples; a head that still varies is slow, not dead), or
  almost none of the localization MLP's hidden ReLUs active;
- classification (Eq. 12): the cross-entropy no lower than the entropy of the epoch's labels (what
  predicting the label frequencies scores) and not falling either, or almost none of its hidden
  ReLUs active.
The columns behind them (``health_*``) go into metrics.csv every epoch.
"""
from __future__ import annotations

import math
import sys
from functools import partial

import torch
from torch import nn

# a head whose hidden ReLUs fire (on any sample of a batch) below this share is dead: dead heads measured 0.0%;
# on the zoo's 1024-d setting a live localization head passed through 3% (of 1536) and recovered
ACTIVE_MIN = 0.01
COM_PINNED = 0.01  # completeness loss within this of the hinge margin 1 ...
COM_FLAT = 0.05  # ... with health_com_spread (the scores around their class's batch mean) below this: a constant output
CLS_STUCK = 0.95  # cross-entropy at or above this share of the labels' entropy: the frequencies guessed ...
CLS_FALLING = 0.03  # ... unless it fell by this share since the epoch before (a slow start under warm-up)
FIRST_EPOCH = 2  # the first epoch's means include the start from random weights
HEADS = ("cls_head", "loc_head")


class ActivityProbe:
    """Forward hooks on a detector's head MLPs' ReLUs: after each training forward, ``active[head]``
    is the share of hidden units positive on at least one sample of the batch."""

    def __init__(self, model: nn.Module):
        self.active: dict[str, torch.Tensor] = {}
        for head in HEADS:
            relu = next(m for m in getattr(model, head).mlp if isinstance(m, nn.ReLU))
            relu.register_forward_hook(partial(self._record, head))

    def _record(self, head: str, module: nn.Module, inputs, output: torch.Tensor) -> None:
        if module.training:
            self.active[head] = (output.detach() > 0).any(0).float().mean()


def label_entropy(counts: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of the distribution of labels counted in ``counts`` [C + 1]: the cross-entropy of
    predicting every sample's label by the labels' frequencies."""
    p = counts[counts > 0].double()
    p = p / p.sum()
    return -(p * p.log()).sum()


class LabelCounter:
    """Counts the classification samples' labels over an epoch (its :meth:`entropy` is the baseline
    the classification loss must fall below)."""

    def __init__(self, num_labels: int):
        self.counts = torch.zeros(num_labels, dtype=torch.long)

    def add(self, labels: torch.Tensor) -> None:
        labels = labels[labels >= 0].cpu()
        self.counts += torch.bincount(labels, minlength=len(self.counts))

    def entropy(self) -> float | None:
        """The epoch's label entropy, and a fresh count for the next epoch; None without samples."""
        counts, self.counts = self.counts, torch.zeros_like(self.counts)
        return float(label_entropy(counts)) if counts.sum() else None


def completeness_spread(completeness: torch.Tensor, targets) -> dict[str, torch.Tensor]:
    """``health_com_spread``: the root mean square, over the batch's completeness samples, of their
    score for their action's class (Eq. 13) less that class's mean score in the batch: 0 where the
    head's output no longer depends on its input (a per-class constant); {} without samples."""
    valid = (targets.completeness >= 0) & (targets.action > 0)
    if not bool(valid.any()):
        return {}
    cls = targets.action[valid] - 1
    z = completeness[valid].detach().float().gather(1, cls.unsqueeze(1)).squeeze(1)  # [M]
    sums = z.new_zeros(completeness.shape[1]).index_add(0, cls, z)
    counts = z.new_zeros(completeness.shape[1]).index_add(0, cls, torch.ones_like(z))
    residual = z - (sums / counts.clamp_min(1))[cls]
    return {"health_com_spread": residual.pow(2).mean().sqrt()}


def active_shares(probe: ActivityProbe) -> dict[str, torch.Tensor]:
    """The ``health_*_active`` values of the last training batch (logged beside the losses, never minimised)."""
    return {f"health_{head.split('_')[0]}_active": a for head, a in probe.active.items()}


def diagnose(row: dict[str, float], previous: dict[str, float] | None = None) -> dict[str, str]:
    """{head: what is wrong} for one stream's epoch means (the loss terms and health columns);
    ``previous``: the epoch before's."""
    found = {}
    com, loc_active, spread = row.get("com"), row.get("health_loc_active"), row.get("health_com_spread", 0.0)
    pinned = com is not None and (not math.isfinite(com) or (abs(com - 1.0) < COM_PINNED and spread < COM_FLAT))
    if pinned or (loc_active is not None and loc_active < ACTIVE_MIN):
        found["completeness"] = (f"completeness loss {com:.4f} at the hinge margin 1, scores spread {spread:.3f}, "
                                 f"{loc_active:.1%} of the localization head's ReLUs active")
    cls, entropy, cls_active = row.get("cls"), row.get("health_cls_entropy"), row.get("health_cls_active")
    before = (previous or {}).get("cls")
    falling = cls is not None and before is not None and cls < (1 - CLS_FALLING) * before
    guessing = cls is not None and entropy and not cls < CLS_STUCK * entropy and not falling
    if guessing or (cls_active is not None and cls_active < ACTIVE_MIN):
        found["classification"] = (f"classification loss {cls:.3f} against {entropy:.3f} for guessing the label "
                                   f"frequencies, {cls_active:.1%} of its ReLUs active")
    return found


class HealthCheck:
    """Judges each stream's epoch row from epoch FIRST_EPOCH on, adds ``health_dead`` (the number of
    heads with a sign of death) to it, and warns once per stream and head, on the second epoch in a row
    with the sign (a slow start is not a dead head), on stderr with the likely fix."""

    FIX = ("the learning rate is too high for these features, or their scale is off: keep the defaults "
           "model.input_norm: rms, model.head_norm: layer, train.optimizer: adamw with warm-up, or lower train.lr "
           "(docs/training.md, 'Health check')")

    def __init__(self):
        self.warned: set[str] = set()
        self.previous: set[str] = set()
        self.last_row: dict[str, float] | None = None

    def __call__(self, epoch: int, stream: str, row: dict[str, float]) -> None:
        found = diagnose(row, self.last_row) if epoch >= FIRST_EPOCH else {}
        self.last_row = dict(row)
        row["health_dead"] = float(len(found))
        for head, what in found.items():
            if head in self.previous and head not in self.warned:
                self.warned.add(head)
                print(f"warning: {stream}: the {head} head looks dead at epoch {epoch} ({what}); {self.FIX}",
                      file=sys.stderr, flush=True)
        self.previous = set(found)
