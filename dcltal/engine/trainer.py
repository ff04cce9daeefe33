"""The training loop (``dcltal train``; docs/training.md), generic over small *tasks*.

A task is what one model needs (engine/detection/task.py: a detector stream; engine/proposals/task.py:
the proposal generator); each product's ``training_run`` builds its tasks from the config (:data:`PRODUCTS`)::

    score_name: str                                  # validation score, higher is better
    __len__() -> int                                 # items the processes share (videos, windows)
    build_model() -> nn.Module
    batches(generator, indices=None) -> iterator     # shuffled by generator; indices: this process's shard
    losses(model, batch, generator) -> {"total": ..., other terms}
    validate(model) -> {score_name: x, ...}          # {} where nothing is held out
    checkpoint_entry(model) -> {"state_dict": ..., ...}
    num_batches(indices) -> int                      # optional: the progress bar's total
    check_health(epoch, row) -> None                 # optional: warn of a dead model from an epoch's means

:func:`fit` trains several tasks in lock step (an epoch of each, then validation), so that every
epoch's last.pt holds all of them and best.pt is chosen by one score, ``best_score`` in the checkpoint
(the layout's joint score where it has one: the detector's streams' fused mAP). Reproducible on CPU across a kill: each epoch's randomness comes from (seed, epoch, task)
(engine/schedule.py) and last.pt carries the optimiser and RNG states.
"""
from __future__ import annotations

import math
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import nn
from tqdm import tqdm

from dcltal.engine.averaging import WeightAverage
from dcltal.engine.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from dcltal.engine.device import autocast, grad_scaler
from dcltal.engine.distributed import DistContext, barrier, broadcast_object, shard_indices
from dcltal.engine.metrics import MetricsLog
from dcltal.engine.schedule import build_optimizer, epoch_seed, lr_at, set_lr
from dcltal.errors import UserError


@dataclass
class Layout:
    """Where the tasks' entries go in the checkpoint, and what else it carries."""

    entries_key: str | None  # "streams": ckpt["streams"][name]; None: ckpt[name]
    fields: dict[str, Any] = field(default_factory=dict)  # config, classes, coder, ...
    joint_score: Callable[[Mapping[str, nn.Module]], dict[str, float]] | None = None  # best.pt by this; None: the mean of the tasks' scores

    def place(self, entries: dict[str, dict]) -> dict[str, Any]:
        return {self.entries_key: entries} if self.entries_key else dict(entries)

    def entry(self, ckpt: dict[str, Any], name: str) -> dict:
        return ckpt[self.entries_key][name] if self.entries_key else ckpt[name]


def _last_checkpoint(work: Path) -> Path:
    """``work``'s last.pt, which ``--resume`` needs."""
    last = work / "checkpoints" / "last.pt"
    if not last.is_file():
        raise UserError(f"--resume: no checkpoint {last} to resume from (run without --resume to start)")
    return last


def _unwrap(model: nn.Module) -> nn.Module:
    return getattr(model, "module", model)


def fit(tasks: Mapping[str, Any], train_cfg, work_dir: str | Path, layout: Layout, ctx: DistContext,
        resume: bool = False, progress: bool = True) -> tuple[dict[str, nn.Module], Path]:
    """Train every task for ``train_cfg.epochs`` epochs; returns the models (unwrapped, last epoch's
    weights, averaged where ``train.ema_decay`` says) and the path of the checkpoint to use (best.pt where validation chose one, else last.pt)."""
    tc, work = train_cfg, Path(work_dir)
    last_path, best_path = work / "checkpoints" / "last.pt", work / "checkpoints" / "best.pt"
    models, optimizers, scalers, averages = {}, {}, {}, {}
    for name, task in tasks.items():
        torch.manual_seed(epoch_seed(tc.seed, -1, name))  # the initial weights: the same on every process
        models[name] = task.build_model().to(ctx.device)
        optimizers[name] = build_optimizer(models[name].parameters(), tc)
        scalers[name] = grad_scaler(ctx.device, tc.amp)
        averages[name] = WeightAverage(models[name], tc.ema_decay)
    score_name = next(iter(tasks.values())).score_name  # a joint score is of the same kind
    start, best, best_epoch = 0, -math.inf, 0
    if resume:
        ckpt = load_checkpoint(_last_checkpoint(work))
        state = ckpt.get("training")
        if state is None or set(state["optimizers"]) != set(tasks):
            raise UserError(f"--resume: {last_path} was not written by a training run of these models")
        for name in tasks:
            try:
                averages[name].load_state(state.get("averages", {}).get(name), layout.entry(ckpt, name)["state_dict"])
            except RuntimeError:
                raise UserError(f"--resume: {last_path} holds a {name} model of another architecture than the "
                                "config's (model.* or data.streams changed?); resume with the config it was trained with, or "
                                "start in a new --work-dir") from None
            optimizers[name].load_state_dict(state["optimizers"][name])
            scalers[name].load_state_dict(state["scalers"][name])
        start, best, best_epoch = int(ckpt["epoch"]), float(state["best_score"]), int(state["best_epoch"])
        set_rng_state(state["rng"])
    wrapped = dict(models)
    if ctx.distributed:
        ids = [ctx.device.index] if ctx.device.type == "cuda" else None
        wrapped = {n: nn.parallel.DistributedDataParallel(m, device_ids=ids) for n, m in models.items()}
    log = MetricsLog(work, resume_epoch=start if resume else 0) if ctx.is_main else None
    show = progress and ctx.is_main
    epochs = tqdm(range(start, tc.epochs), initial=start, total=tc.epochs, desc="epochs", unit="epoch",
                  disable=not show, file=sys.stderr)
    for epoch in epochs:
        lr = lr_at(epoch, tc)  # the row's lr where a task has no batches (each batch sets its own)
        rows = {}
        for name, task in tasks.items():
            rows[name] = {"lr": lr, **_train_epoch(task, wrapped[name], optimizers[name], scalers[name], averages[name],
                                                   tc, ctx, epoch, name, show)}
        if ctx.is_main:
            for name, task in tasks.items():
                if hasattr(task, "check_health"):
                    task.check_health(epoch + 1, rows[name])
        validate = (epoch + 1) % max(tc.val_every, 1) == 0 or epoch + 1 == tc.epochs
        score = None
        evaluated = {n: a.model() for n, a in averages.items()}
        if validate and ctx.is_main:
            for name, task in tasks.items():
                rows[name].update({f"val_{k}": v for k, v in task.validate(evaluated[name]).items()})
            if layout.joint_score is not None:
                rows["fused"] = {f"val_{k}": v for k, v in layout.joint_score(evaluated).items()}
                score = rows["fused"].get(f"val_{score_name}")
            else:  # one task: its score; several without a joint score: their mean
                found = [rows[n].get(f"val_{t.score_name}") for n, t in tasks.items()]
                score = None if None in found else sum(found) / len(found)
        if ctx.is_main:
            entries = {n: task.checkpoint_entry(_unwrap(evaluated[n])) for n, task in tasks.items()}
            _check_finite(entries, epoch)
            if score is not None and score > best:
                best, best_epoch = score, epoch + 1
                save_checkpoint(best_path, {**layout.fields, **layout.place(entries), "epoch": epoch + 1, "best_score": best})
            log.write(epoch + 1, rows)
            training = {"optimizers": {n: o.state_dict() for n, o in optimizers.items()},
                        "scalers": {n: s.state_dict() for n, s in scalers.items()},
                        "rng": rng_state(), "best_score": best, "best_epoch": best_epoch,
                        "averages": {n: a.state() for n, a in averages.items()}}
            save_checkpoint(last_path, {**layout.fields, **layout.place(entries), "epoch": epoch + 1,
                                        "best_score": best if best > -math.inf else None, "training": training})
            epochs.set_postfix({k: f"{v:.4g}" for k, v in _summary(rows, score_name).items()})
        barrier(ctx)
    epochs.close()
    if log is not None:
        log.close()
    chosen = broadcast_object(str(best_path if best_epoch > 0 and best_path.is_file() else last_path), ctx)
    return {n: a.model() for n, a in averages.items()}, Path(chosen)


def _train_epoch(task, model: nn.Module, optimizer, scaler, average: WeightAverage, tc, ctx: DistContext, epoch: int,
                 name: str, show: bool) -> dict[str, float]:
    """One pass over this process's share of the task's items; the mean of each loss term."""
    model.train()
    torch.manual_seed(epoch_seed(tc.seed, epoch, name, ctx.rank))  # dropout: this process's own draws
    generator = torch.Generator().manual_seed(epoch_seed(tc.seed, epoch, name))  # batches: shared by all processes
    indices = shard_indices(len(task), ctx, epoch, tc.seed)
    total = task.num_batches(indices) if hasattr(task, "num_batches") else None
    sums: dict[str, float] = defaultdict(float)
    count, started = 0, time.perf_counter()
    bar = tqdm(task.batches(generator, indices), total=total, desc=f"epoch {epoch + 1}/{tc.epochs} {name}",
               unit="batch", leave=False, disable=not show, file=sys.stderr)
    for batch in bar:
        lr = lr_at(epoch + (count / total if total else 0.0), tc)
        set_lr(optimizer, lr)
        sums["lr"] += lr  # the row's lr: the epoch's mean rate
        with autocast(ctx.device, tc.amp):
            losses = task.losses(model, batch, generator)
        if not torch.isfinite(losses["total"]).all():  # one step on it would make every weight NaN
            bar.close()
            loss = float(losses["total"].detach())
            raise _stopped(f"the {name} model's loss is {loss} at epoch {epoch + 1}, batch {count + 1}")
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(losses["total"]).backward()
        if tc.clip_grad_norm > 0:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), tc.clip_grad_norm)
        scaler.step(optimizer)
        scaler.update()
        average.update()
        for k, v in losses.items():
            sums[k] += float(v.detach())
        count += 1
    bar.close()
    out = {k: v / max(count, 1) for k, v in sums.items()}
    out["wall_s"] = time.perf_counter() - started
    return out


def _stopped(what: str) -> UserError:
    return UserError(f"training stopped: {what}; the checkpoints of earlier epochs are kept "
                     "(lower train.lr or train.clip_grad_norm, or check the features and labels)")


def _check_finite(entries: dict[str, Any], epoch: int) -> None:
    """A UserError where a model's weights hold NaN or Inf, before they reach a checkpoint."""
    def tensors(x: Any):
        if isinstance(x, torch.Tensor):
            yield x
        elif isinstance(x, dict):
            for v in x.values():
                yield from tensors(v)

    for name, entry in entries.items():
        if any(t.is_floating_point() and not torch.isfinite(t).all() for t in tensors(entry)):
            raise _stopped(f"the {name} model's weights are not finite after epoch {epoch + 1}")


def _summary(rows: dict[str, dict[str, float]], score_name: str) -> dict[str, float]:
    out = {f"{n}_loss": r["total"] for n, r in rows.items() if "total" in r}
    out.update({f"{n}_{score_name}": r[f"val_{score_name}"] for n, r in rows.items() if f"val_{score_name}" in r})
    return out


# model.kind -> the module whose ``training_run(cfg, work_dir, ctx, resume, progress, **options)`` returns
# (tasks, Layout): each product builds its own tasks from the config; this loop knows none of them
PRODUCTS = {"detector": "dcltal.engine.detection.task", "proposals": "dcltal.engine.proposals.task"}


def train(cfg, work_dir: str | Path, resume: bool = False, progress: bool = True, **options) -> Path:
    """``dcltal train``: the tasks of ``model.kind`` (the detector: one model a stream of ``data.streams``;
    the proposal generator) through :func:`fit`. Under torchrun, one process of a DDP group. Returns the
    checkpoint to use (best.pt where validation chose one, else last.pt). ``options`` go to the
    product's ``training_run`` (the detector's: ``video_classifier``, states already trained on the
    same split, which the ablation's runs of one seed share)."""
    import importlib

    from dcltal.engine.distributed import process_group

    with process_group(cfg.train.device) as ctx:
        product = importlib.import_module(PRODUCTS[cfg.model.kind])
        tasks, layout = product.training_run(cfg, Path(work_dir), ctx, resume, progress, **options)
        _, chosen = fit(tasks, cfg.train, work_dir, layout, ctx, resume, progress)
        return chosen


def checkpoint_fields(cfg, classes: list[str]) -> dict[str, Any]:
    """What every checkpoint carries beside its models: the config and the class names."""
    return {"config": cfg.to_dict(), "classes": list(classes)}


def resumed_checkpoint(work: Path, resume: bool) -> dict | None:
    """The last.pt of the run being resumed (checked to exist before any training), else None."""
    return load_checkpoint(_last_checkpoint(work)) if resume else None
