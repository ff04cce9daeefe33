"""Optimiser, learning-rate schedule and the seeds of each epoch (docs/training.md).

The learning rate is a pure function of the epoch and the share of its batches done (:func:`lr_at`),
and every random draw of an epoch comes from seeds derived from (seed, epoch, model name[, rank]); so a run resumed after a kill needs no scheduler state and repeats exactly.
"""
from __future__ import annotations

import math
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


def lr_at(epoch: float, train_cfg) -> float:
    """The rate at ``epoch`` (0-based; the fraction is the share of the epoch's batches done):
    ``train.schedule`` step (the base rate times ``lr_gamma`` once for every step in ``lr_steps`` at or
    before ``epoch``) or cosine (from the base rate at 0 to 0 at ``train.epochs``), times a linear
    warm-up from 0 over the first ``train.warmup_epochs``."""
    tc = train_cfg
    if tc.schedule == "cosine":
        lr = tc.lr * 0.5 * (1.0 + math.cos(math.pi * min(epoch / max(tc.epochs, 1), 1.0)))
    else:
        lr = tc.lr * tc.lr_gamma ** sum(epoch >= s for s in tc.lr_steps)
    return lr * min(1.0, epoch / tc.warmup_epochs) if tc.warmup_epochs > 0 else lr


def describe_schedule(train_cfg) -> str:
    """The schedule in words, for reports: e.g. "cosine decay, 1 epoch of warm-up, gradients clipped at 1"."""
    tc = train_cfg
    words = ["cosine decay" if tc.schedule == "cosine" else f"steps x{tc.lr_gamma:g} at epochs {tc.lr_steps}"]
    if tc.warmup_epochs > 0:
        words.append(f"{tc.warmup_epochs:g} epoch(s) of warm-up")
    if tc.clip_grad_norm > 0:
        words.append(f"gradients clipped at {tc.clip_grad_norm:g}")
    if tc.ema_decay > 0:
        words.append(f"weights averaged (EMA {tc.ema_decay:g})")
    return ", ".join(words)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def epoch_seed(seed: int, epoch: int, name: str, rank: int = 0) -> int:
    """A 63-bit seed for one (run seed, epoch, model, process); epoch -1 is the initialisation."""
    return int(np.random.SeedSequence([seed, epoch + 1, zlib.crc32(name.encode()), rank]).generate_state(2, np.uint64)[0] >> 1)
