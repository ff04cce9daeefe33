"""End-to-end inference time for the THUMOS14-sized test set (issue 4, part 6), on the code path of
`dcltal infer`: a checkpoint file loaded by ``Predictor.from_checkpoint``, ``Predictor.detect`` (the
built-in video-level classifier's scores, both streams' detectors, RGB:Flow 5:6 fusion, video-level
scores fused in, top-k pairs, per-class NMS) and the results JSON written atomically.

    .venv/bin/python benchmarks/bench_infer.py [--videos 212] [--repeats 1] [--threads N] [--untuned]

Input: the 212 test videos' real durations and fps (../shared/data/thumos14/actionformer/thumos14.json)
on the feature grid stride 4, window 16, two streams of D = 1024 random non-negative features (made in
memory when first read, a few videos cached, as the feature store does; the time to make them is
measured and left out), 800 random proposals a video (10-300 frames, with scores), a randomly
initialised checkpoint (config configs/thumos14_i3d.yaml; speed does not depend on the weights; with
random weights NMS keeps about as many detections as with trained ones, ``infer.max_detections``).
Prints wall and CPU seconds of the whole run and of each stage, each stage's share, and the load.
"""
from __future__ import annotations

import argparse
import functools
import os
import resource
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from dcltal.runtime import tune_process

if "--untuned" not in sys.argv:  # the dcltal command's process settings (dcltal/runtime.py), before torch loads
    tune_process()

import numpy as np  # noqa: E402
import torch  # noqa: E402

import dcltal.engine.detection.inference as inference  # noqa: E402
import dcltal.engine.detection.predictor as predictor_module  # noqa: E402
from dcltal.config import load_config  # noqa: E402
from dcltal.data.grid import TimeGrid  # noqa: E402
from dcltal.engine.checkpoint import save_checkpoint  # noqa: E402
from dcltal.engine.detection.predictor import Predictor  # noqa: E402
from dcltal.model.video_classifier import VideoClassifier  # noqa: E402
from dcltal.io import write_json  # noqa: E402
from dcltal.model.detector import Detector  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_model import D, PROPOSALS, test_entries  # noqa: E402  the same test set as the model's benchmark

ROOT = Path(__file__).resolve().parents[1]


class Clock:
    """Wall and CPU seconds per stage; a stage nested in another is taken out of the outer one, and the
    making of synthetic features ("input") out of whichever stage asked for them."""

    def __init__(self):
        self.wall, self.cpu, self.stack = defaultdict(float), defaultdict(float), []

    def wrap(self, name, fn):
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            self.stack.append([name, time.perf_counter(), time.process_time(), 0.0, 0.0])
            try:
                return fn(*args, **kwargs)
            finally:
                _, w0, c0, w_in, c_in = self.stack.pop()
                w, c = time.perf_counter() - w0, time.process_time() - c0
                self.wall[name] += w - w_in
                self.cpu[name] += c - c_in
                if self.stack:  # the outer stage did not spend this time itself
                    self.stack[-1][3] += w
                    self.stack[-1][4] += c
        return timed


class SyntheticVideo:
    """One test video as inference reads it (InferenceVideo): features made on first use."""

    def __init__(self, vid: str, grid: TimeGrid, duration: float, t: int, proposals: np.ndarray, make):
        self.id, self.grid, self.duration, self.proposals = vid, grid, duration, proposals
        self._t, self._make = t, make

    @property
    def features(self) -> dict[str, np.ndarray]:
        return self._make(self.id, self._t)


def test_set(count: int, seed: int = 0) -> list[tuple[str, TimeGrid, float, int, np.ndarray]]:
    """(id, grid, duration, T, proposals [800, 3]) of ``count`` evenly spaced test videos (all 212 by default)."""
    rng = np.random.default_rng(seed)
    out = []
    for vid, v, grid, t in test_entries():
        frames = v["duration"] * v["fps"]
        length = rng.uniform(10, 300, PROPOSALS)
        start = rng.uniform(0, np.maximum(frames - length, 1.0))
        props = np.stack([start / grid.fps, (start + length) / grid.fps, rng.uniform(0, 1, PROPOSALS)], 1)
        out.append((vid, grid, float(v["duration"]), t, props))
    if count < len(out):
        out = [out[i] for i in np.linspace(0, len(out) - 1, count).round().astype(int)]
    return out


def write_checkpoint(path: Path, cfg, classes: list[str]) -> None:
    """A randomly initialised checkpoint in the layout `dcltal train` writes (docs/architecture.md)."""
    torch.manual_seed(0)
    streams = {s: {"dim": D, "state_dict": Detector.from_config(cfg.model, D, len(classes)).state_dict()}
               for s in cfg.data.streams}
    save_checkpoint(path, {"config": cfg.to_dict(), "classes": classes, "streams": streams,
                           "coder": {"kind": "agnostic", "mean": [0.0, 0.0], "std": [0.1, 0.1]},
                           "video_classifier": {s: VideoClassifier(D, len(classes)).state_dict() for s in cfg.data.streams},
                           "epoch": 0, "best_score": 0.0})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--videos", type=int, default=212, help="test videos (default all 212; fewer: evenly spaced)")
    p.add_argument("--repeats", type=int, default=1, help="runs; the figures are the fastest run's (by CPU time)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, the cores)")
    p.add_argument("--untuned", action="store_true", help="leave the process settings of dcltal/runtime.py "
                   "(OpenMP spinning, malloc) at the system's defaults")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    cfg = load_config(ROOT / "configs/thumos14_i3d.yaml")
    classes = [f"class{i}" for i in range(cfg.model.num_classes)]
    videos_spec = test_set(args.videos)
    lengths = np.array([t for _, _, _, t, _ in videos_spec])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {len(videos_spec)} test videos, "
          f"T = {lengths.min()}..{lengths.max()} (sum {lengths.sum()}) snippets, {PROPOSALS} proposals each, "
          f"streams {list(cfg.data.streams)}, D = {D}; load average at start {os.getloadavg()}")

    with tempfile.TemporaryDirectory() as tmp:
        ckpt, out = Path(tmp) / "random.pt", Path(tmp) / "results.json"
        write_checkpoint(ckpt, cfg, classes)
        best = None
        for _ in range(args.repeats):
            clock = Clock()

            @functools.lru_cache(maxsize=16)  # as data.videos.load_videos caches the feature store's reads
            @functools.partial(clock.wrap, "input (synthetic features, left out)")
            def make(vid: str, t: int) -> dict[str, np.ndarray]:
                g = np.random.default_rng(abs(hash(vid)) % 2**32)
                return {s: g.random((t, D), dtype=np.float32) for s in cfg.data.streams}

            patches = {  # the stages: module functions the `dcltal infer` path calls, timed in place
                (predictor_module.Predictor, "video_scores"): "video-level scores (built-in classifier)",
                (inference, "stream_predictions"): "detector forward (both streams, packing, Eq. 16, decoding)",
                (inference, "video_detections"): "stream fusion (5:6)",
                (inference, "postprocess"): "video-level fusion, top-k, per-class NMS",
            }
            originals = {key: getattr(*key) for key in patches}
            for (owner, name), stage in patches.items():
                setattr(owner, name, clock.wrap(stage, originals[(owner, name)]))
            try:
                w0, c0 = time.perf_counter(), time.process_time()
                predictor = clock.wrap("load checkpoint", Predictor.from_checkpoint)(ckpt, "cpu")
                videos = [SyntheticVideo(vid, grid, dur, t, props, make) for vid, grid, dur, t, props in videos_spec]
                results = clock.wrap("detect (rest: chunking, JSON objects)", predictor.detect)(videos, cfg)
                clock.wrap("write results JSON", write_json)(out, results)
                wall, cpu = time.perf_counter() - w0, time.process_time() - c0
            finally:
                for (owner, name), fn in originals.items():
                    setattr(owner, name, fn)
            made = "input (synthetic features, left out)"
            wall, cpu = wall - clock.wall[made], cpu - clock.cpu[made]
            if best is None or cpu < best[1]:
                best = (wall, cpu, clock, sum(len(d) for d in results["results"].values()), out.stat().st_size)
        wall, cpu, clock, detections, size = best
    print(f"end to end (load checkpoint .. results JSON written): {wall:.1f} s wall, {cpu:.1f} CPU-s "
          f"({detections} detections, {size / 1e6:.1f} MB JSON); synthetic features made in "
          f"{clock.wall[made]:.1f} s more, not counted")
    for stage in sorted(clock.wall, key=lambda s: -clock.cpu[s]):
        if stage != made:
            print(f"  {stage:62s} {clock.wall[stage]:7.1f} s wall {clock.wall[stage] / wall:6.1%}  "
                  f"{clock.cpu[stage]:7.1f} CPU-s {clock.cpu[stage] / cpu:6.1%}")
    if len(videos_spec) < 212:
        print(f"  ({len(videos_spec)} of the 212 videos: {lengths.sum()} snippets)")
    print(f"peak memory (max RSS) {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB; "
          f"load average at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
