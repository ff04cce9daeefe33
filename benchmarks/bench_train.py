"""Training throughput of `dcltal train`'s loop at THUMOS14 scale (issue 4, part 6; docs/training.md).

    .venv/bin/python benchmarks/bench_train.py [--videos 200] [--batches 3] [--dim 1024] [--device auto]

Input: the 200 THUMOS14 training (Validation) videos' real durations, fps and 3,007 ground-truth
instances (../shared/data/thumos14/actionformer/thumos14.json) on the feature grid stride 4, window 16
(T = 1,576 snippets on average, up to ~10,600); synthetic features: D = 1024 a stream, two streams
(rgb, flow), random non-negative values drawn when a batch reads them (as I3D features after ReLU);
proposals: 12 jittered copies of each ground truth and 400 random segments of 10-300 frames a video,
so that all three kinds are present. The model is the paper's (D_h 256, cls MLP 1024, loc MLP 1536,
C = 20), trained with the default config (1:6:1 x 4 = 32 sampled proposals a video, 8 videos a batch,
SGD) through engine.trainer.fit, which also writes last.pt (both streams, optimiser state).

A CPU epoch at this scale takes many minutes, so the loop runs ``--batches`` batches a stream (one
epoch of a task cut short) and the epoch time is extrapolated linearly to all batches (the videos
of a batch are drawn at random, so the first batches are a fair sample). Prints: proposals/s and
videos/s a stream, s/epoch (both streams), the process's CPU time (less sensitive to other work on
the machine than wall time), the checkpoint write, and the machine's load.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from dcltal.config import Config
from dcltal.data.grid import TimeGrid
from dcltal.data.videos import VideoDataset, VideoRecord
from dcltal.engine.detection.task import DetectorTask, fit_coder, label_videos
from dcltal.engine.distributed import DistContext
from dcltal.engine.device import resolve_device
from dcltal.engine.trainer import Layout, fit

ANNOTATIONS = Path(__file__).resolve().parents[2] / "shared/data/thumos14/actionformer/thumos14.json"
STREAMS = ("rgb", "flow")


class LazyFeatures(dict):
    """{stream: [T, D]} drawn on access from the video's own seed (no 2.6 GB held in memory)."""

    def __init__(self, seed: int, length: int, dim: int):
        super().__init__({s: None for s in STREAMS})
        self.seed, self.length, self.dim = seed, length, dim

    def __getitem__(self, stream: str) -> np.ndarray:
        rng = np.random.default_rng([self.seed, STREAMS.index(stream)])
        return np.abs(rng.standard_normal((self.length, self.dim), dtype=np.float32))

    def values(self):
        return [self[s] for s in STREAMS]


def thumos_videos(count: int, dim: int) -> VideoDataset:
    raw = json.loads(ANNOTATIONS.read_text())["database"]
    train = [(vid, v) for vid, v in raw.items() if v["subset"] == "Validation"][:count]
    classes = sorted({a["label"] for _, v in train for a in v["annotations"]})
    records = []
    for i, (vid, v) in enumerate(train):
        grid = TimeGrid(v["fps"], 4, 16)
        length = int(math.floor((v["duration"] * v["fps"] - 16) / 4)) + 1
        rng = np.random.default_rng(i)
        gt = np.array([a["segment"] for a in v["annotations"]], dtype=np.float64).reshape(-1, 2)
        labels = np.array([classes.index(a["label"]) for a in v["annotations"]], dtype=np.int64)
        near = np.repeat(gt, 12, axis=0)
        near += rng.normal(0, 0.15, near.shape) * (near[:, 1:] - near[:, :1])
        start = rng.uniform(0, v["duration"], 400)
        rand = np.stack([start, start + rng.uniform(10, 300, 400) / v["fps"]], axis=1)
        props = np.clip(np.sort(np.concatenate([near, rand]), axis=1), 0, v["duration"])
        props = np.column_stack([props, rng.uniform(0, 1, len(props))])
        records.append(VideoRecord(vid, grid, float(v["duration"]), LazyFeatures(i, length, dim), props, gt, labels))
    return VideoDataset(records, classes)


class FirstBatches:
    """A task whose epoch stops after ``count`` batches (for timing)."""

    def __init__(self, task: DetectorTask, count: int):
        self.task, self.count = task, count
        self.score_name = task.score_name

    def __len__(self):
        return len(self.task)

    def num_batches(self, indices):
        return min(self.count, self.task.num_batches(indices))

    def batches(self, generator, indices=None):
        for i, batch in enumerate(self.task.batches(generator, indices)):
            if i == self.count:
                return
            yield batch

    def __getattr__(self, name):
        return getattr(self.task, name)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--videos", type=int, default=200)
    ap.add_argument("--batches", type=int, default=3, help="batches timed a stream (extrapolated to an epoch)")
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()

    cfg = Config()
    cfg.train.device, cfg.train.val_fraction, cfg.train.epochs = args.device, 0.0, 1
    device = resolve_device(args.device)
    videos = thumos_videos(args.videos, args.dim)
    labelled = label_videos(videos, cfg.train)
    coder = fit_coder(cfg.model.regression, labelled)
    empty = VideoDataset([], videos.classes)
    tasks = {s: FirstBatches(DetectorTask(cfg, s, videos, empty, labelled, coder), args.batches) for s in STREAMS}
    per_batch = cfg.train.videos_per_batch
    full_batches = math.ceil(len(videos) / per_batch)
    timed = min(args.batches, full_batches)
    sampled = sum(cfg.train.samples_per_video) * cfg.train.sample_scale
    with tempfile.TemporaryDirectory() as work:
        started, cpu_started = time.perf_counter(), time.process_time()
        fit(tasks, cfg.train, work, Layout("streams", {"config": cfg.to_dict(), "classes": videos.classes}),
            DistContext(0, 1, device), progress=True)
        total, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        rows = [line.split(",") for line in (Path(work) / "metrics.csv").read_text().splitlines()]
        header = rows[0]
        wall = {r[header.index("stream")]: float(r[header.index("wall_s")]) for r in rows[1:]}
        ckpt_mb = (Path(work) / "checkpoints" / "last.pt").stat().st_size / 2**20
        t0 = time.perf_counter()
        torch.save(torch.load(Path(work) / "checkpoints" / "last.pt", weights_only=True), Path(work) / "copy.pt")
        write_s = time.perf_counter() - t0
    snippets = np.mean([v.features.length for v in videos])
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{len(videos)} videos (mean T {snippets:.0f} snippets), D = {args.dim} a stream, {sampled} sampled "
          f"proposals a video, {per_batch} videos a batch; timed {timed} of {full_batches} batches a stream")
    epoch = 0.0
    for s in STREAMS:
        per = wall[s] / timed
        epoch += per * full_batches
        print(f"  {s:4s}: {per:6.2f} s/batch  {per_batch / per:6.2f} videos/s  {sampled * per_batch / per:8.1f} proposals/s")
    print(f"s/epoch (both streams, extrapolated to {full_batches} batches each): {epoch:.0f} s")
    # wall time follows the machine's load; the process's CPU time much less so
    cpu_batch = cpu / (len(STREAMS) * timed)
    print(f"CPU time (all threads, the whole run incl. checkpoints): {cpu_batch:.1f} CPU-s a batch, "
          f"{cpu_batch * len(STREAMS) * full_batches:.0f} CPU-s an epoch "
          f"(on an idle machine, wall >= that / {torch.get_num_threads()} threads)")
    print(f"last.pt: {ckpt_mb:.0f} MiB, written in about {write_s:.1f} s; whole run {total:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
