"""The training loop (``dcltal train``; docs/training.md), generic over small *tasks*.

A task is what one model needs (engine/detection/task.py: a detector stream; engine/
proposal_generation.py: the proposal generator)::

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
epoch's last.pt holds all of them and best.pt is chosen by one score (the streams' fused mAP for the
detector). Reproducible on CPU across a kill: each epoch's randomness comes from (seed, epoch, task)
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
                score = rows["fused"].get("val_mAP")
            else:  # one task: its score; several without a joint score: their mean
                found = [rows[n].get(f"val_{t.score_name}") for n, t in tasks.items()]
                score = None if None in found else sum(found) / len(found)
        if ctx.is_main:
            entries = {n: task.checkpoint_entry(_unwrap(evaluated[n])) for n, task in tasks.items()}
            if score is not None and score > best:
                best, best_epoch = score, epoch + 1
                save_checkpoint(best_path, {**layout.fields, **layout.place(entries), "epoch": epoch + 1, "best_map": best})
            log.write(epoch + 1, rows)
            training = {"optimizers": {n: o.state_dict() for n, o in optimizers.items()},
                        "scalers": {n: s.state_dict() for n, s in scalers.items()},
                        "rng": rng_state(), "best_score": best, "best_epoch": best_epoch,
                        "averages": {n: a.state() for n, a in averages.items()}}
            save_checkpoint(last_path, {**layout.fields, **layout.place(entries), "epoch": epoch + 1,
                                        "best_map": best if best > -math.inf else None, "training": training})
            epochs.set_postfix({k: f"{v:.4g}" for k, v in _summary(rows).items()})
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


def _summary(rows: dict[str, dict[str, float]]) -> dict[str, float]:
    out = {f"{n}_loss": r["total"] for n, r in rows.items() if "total" in r}
    out.update({f"{n}_mAP": r["val_mAP"] for n, r in rows.items() if "val_mAP" in r})
    return out


def train(cfg, work_dir: str | Path, resume: bool = False, progress: bool = True,
          video_classifier: dict | None = None) -> Path:
    """``dcltal train``: the detector (one model a stream of ``data.streams``, with the built-in
    video-level classifier where ``infer.video_scores`` is builtin) or, with ``model.kind:
    proposals``, the proposal generator. Under torchrun, one process of a DDP group. Returns the
    checkpoint to use (best.pt where validation chose one, else last.pt). ``video_classifier``: the
    classifier's states, already trained on the same split (the ablation's runs of one seed share one)."""
    from dcltal.engine.distributed import process_group

    with process_group(cfg.train.device) as ctx:
        if cfg.model.kind == "proposals":
            return _train_proposals(cfg, work_dir, ctx, resume, progress)
        return _train_detector(cfg, work_dir, ctx, resume, progress, video_classifier)


def _fields(cfg, classes: list[str]) -> dict[str, Any]:
    return {"config": cfg.to_dict(), "classes": list(classes)}


def _train_proposals(cfg, work_dir, ctx: DistContext, resume: bool, progress: bool) -> Path:
    from dcltal.engine.proposals.task import ProposalTask

    task = ProposalTask.from_config(cfg)
    _, chosen = fit({"proposals": task}, cfg.train, work_dir, Layout(None, _fields(cfg, ["action"])), ctx, resume,
                    progress)
    return chosen


def _train_detector(cfg, work_dir, ctx: DistContext, resume: bool, progress: bool,
                    video_classifier: dict | None) -> Path:
    from dcltal.engine.detection.task import detector_tasks, validate_detectors

    tasks, videos, coder = detector_tasks(cfg, progress=progress and ctx.is_main)
    first = next(iter(tasks.values()))
    fields = {**_fields(cfg, videos.classes), "coder": coder.state(), "video_classifier": None}
    level = None  # the held-out videos' video-level scores, which validation multiplies in (rank 0 validates)
    if ctx.is_main and cfg.infer.video_scores == "builtin":
        # before the detector, so that validation scores the held-out videos as inference will the test
        # videos; trained on the detector's training videos only, so the held-out ones stay unseen
        states = video_classifier or _resumed_video_classifier(Path(work_dir), resume)
        if states is None:
            states = _fit_video_classifier(cfg, first.train, ctx, progress)
        fields["video_classifier"] = states
        level = _held_out_video_scores(states, first.val, cfg, ctx)
    for task in tasks.values():
        task.val_video_scores = level
    joint = (lambda models: validate_detectors(dict(models), first.val, coder, cfg, level)) if len(tasks) > 1 else None
    _, chosen = fit(tasks, cfg.train, work_dir, Layout("streams", fields, joint), ctx, resume, progress)
    return chosen


def _resumed_video_classifier(work: Path, resume: bool) -> dict | None:
    """The classifier of the run being resumed (checked to exist before any training)."""
    return load_checkpoint(_last_checkpoint(work)).get("video_classifier") if resume else None


def _fit_video_classifier(cfg, videos, ctx: DistContext, progress: bool) -> dict:
    import numpy as np

    from dcltal.engine.detection.video_classifier import settings, train_video_classifier

    feats = [{s: np.asarray(f, dtype=np.float32) for s, f in v.features.items()} for v in videos]
    return train_video_classifier(feats, [v.labels for v in videos], len(videos.classes), seed=cfg.train.seed,
                                  device=ctx.device, progress=progress, **settings(cfg))


def _held_out_video_scores(states: dict, val, cfg, ctx: DistContext) -> dict:
    from dcltal.engine.detection.video_classifier import load_video_classifiers, video_level_scores

    classifiers = load_video_classifiers(states, ctx.device)
    return {v.id: video_level_scores(classifiers, v.features, cfg.infer.stream_weights) for v in val}
