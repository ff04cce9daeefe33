"""Optimiser, learning-rate schedule and the seeds of each epoch (docs/training.md).

The learning rate is a pure function of the epoch (step decay: ``lr * lr_gamma ** (number of
lr_steps <= epoch)``), and every random draw of an epoch comes from seeds derived from (seed, epoch,
model name[, rank]); so a run resumed after a kill needs no scheduler state and repeats exactly.
"""
from __future__ import annotations

import zlib

import numpy as np
import torch


def build_optimizer(params, train_cfg) -> torch.optim.Optimizer:
    """``train.optimizer``: sgd (momentum, as the SSN / P-GCN / ContextLoc lineage), adam or adamw."""
    tc = train_cfg
    if tc.optimizer == "sgd":
        return torch.optim.SGD(params, lr=tc.lr, momentum=tc.momentum, weight_decay=tc.weight_decay)
    if tc.optimizer == "adam":
        return torch.optim.Adam(params, lr=tc.lr, weight_decay=tc.weight_decay)
    return torch.optim.AdamW(params, lr=tc.lr, weight_decay=tc.weight_decay)


def lr_at(epoch: int, train_cfg) -> float:
    """Step decay: the base rate times ``lr_gamma`` once for every step in ``lr_steps`` at or before
    ``epoch`` (0-based)."""
    return train_cfg.lr * train_cfg.lr_gamma ** sum(epoch >= s for s in train_cfg.lr_steps)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def epoch_seed(seed: int, epoch: int, name: str, rank: int = 0) -> int:
    """A 63-bit seed for one (run seed, epoch, model, process); epoch -1 is the initialisation."""
    return int(np.random.SeedSequence([seed, epoch + 1, zlib.crc32(name.encode()), rank]).generate_state(2, np.uint64)[0] >> 1)
