"""Speed of one stream's detector (issue 3, part 5): the packed once-per-snippet model vs the
per-proposal reference of tests/reference_model.py, on THUMOS14-sized input.

    .venv/bin/python benchmarks/bench_model.py [--videos 212] [--streams 2] [--train-videos 4]
                                               [--reference-proposals 16] [--bf16-videos 10] [--threads N] [--repeats 1]
                                               [--untuned]

Input: the 212 test videos' real durations and fps (../shared/data/thumos14/actionformer/thumos14.json)
on the feature grid stride 4, window 16 (T up to ~12,500 snippets), D = 1024 random non-negative
features (I3D features are post-ReLU), C = 20, 800 random proposals a video, 10-300 frames long
(BSN's range), anywhere in the video. Weights are random (speed does not depend on them).
Prints: this machine's float32/bfloat16 matmul GFLOP/s, inference time over the whole test set (both
streams), the fraction of the matmul-bound time reached, forward+backward time per video, the
reference's time (timed on a subset of proposals, extrapolated linearly: it is a loop over proposals),
bfloat16 (autocast) time and its accuracy cost, peak memory, and the machine load.
Targets: inference < 60 s (float32, 2 cores), >= 10x faster than the reference.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

from dcltal.runtime import tune_process

if "--untuned" not in sys.argv:  # the dcltal command's process settings (dcltal/runtime.py), before torch loads
    tune_process()

import numpy as np  # noqa: E402
import torch  # noqa: E402
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from reference_model import reference_forward  # noqa: E402

from dcltal.data.grid import TimeGrid  # noqa: E402
from dcltal.model.batch import pack_videos  # noqa: E402
from dcltal.model.detector import Detector  # noqa: E402
from dcltal.ops import native  # noqa: E402

ANNOTATIONS = Path(__file__).resolve().parents[2] / "shared/data/thumos14/actionformer/thumos14.json"
D, C, PROPOSALS = 1024, 20, 800


def matmul_gflops(dtype: torch.dtype, n: int = 4096, reps: int = 5) -> tuple[float, float]:
    """(GFLOP per wall second, GFLOP per CPU second of this process) of an n^3 matmul, best of reps.
    The CPU-second figure is the fair yardstick on a machine that others load."""
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    a @ b
    wall = cpu = float("inf")
    for _ in range(reps):
        t, c = time.perf_counter(), time.process_time()
        a @ b
        wall, cpu = min(wall, time.perf_counter() - t), min(cpu, time.process_time() - c)
    return 2 * n**3 / wall / 1e9, 2 * n**3 / cpu / 1e9


def test_entries() -> list[tuple[str, dict, TimeGrid, int]]:
    """(id, annotation entry, grid, T) of the 212 THUMOS14 test videos on the stride-4 / window-16 grid
    (also benchmarks/bench_infer.py's input)."""
    db = json.loads(ANNOTATIONS.read_text())["database"]
    out = []
    for vid, v in sorted(db.items()):
        if v["subset"].lower() != "test":
            continue
        grid = TimeGrid(fps=float(v["fps"]), stride=4, window=16)
        frames = v["duration"] * v["fps"]
        out.append((vid, v, grid, max(1, int((frames - 16) // 4) + 1)))
    return out


def test_videos() -> list[tuple[str, TimeGrid, int]]:
    return [(vid, grid, t) for vid, _, grid, t in test_entries()]


def make_video(grid: TimeGrid, t: int, seed: int):
    """[T, D] features and the packed batch of one video with 800 random proposals."""
    g = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    x = torch.randn(t, D, generator=g).relu_()
    frames = grid.duration(t) * grid.fps
    length = rng.uniform(10, 300, PROPOSALS)
    start = rng.uniform(0, np.maximum(frames - length, 1.0))
    props = np.stack([start, start + length], 1) / grid.fps
    return x, pack_videos([x], [props], [grid])


def model_macs(t: int, n: int, model: Detector) -> int:
    """Multiply-adds of the matrix products of one forward: the D-Net per snippet; W_a and W_l
    (D/2 x D each) per snippet or per region, whichever is fewer (the aggregator picks); W_a^O on
    the 4 regions of a proposal; both heads. The attention's batched products are not counted."""
    counts = model.parameter_counts()
    d = model.dim
    maps = (min(t, n) + min(t, 3 * n)) * d * d  # W_a and W_l of the classification and localization aggregators
    return t * counts["disentangle"] + maps + n * (4 * (d // 2) * d + counts["heads"])


def run_inference(models, videos, autocast=False, repeats=1):
    """(model wall s, model CPU-s, wall s with making the input, multiply-adds): per video, the least
    of ``repeats`` runs (by CPU time; a loaded machine only ever adds time)."""
    total_macs, start = 0, time.perf_counter()
    pure = cpu = 0.0
    for i, (_, grid, t) in enumerate(tqdm(videos, desc="inference", leave=False)):
        x, batch = make_video(grid, t, seed=i)
        runs = []
        for _ in range(repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                for m in models:
                    out = m(batch, reconstruction=False)
                    m.scores(out)
            runs.append((time.process_time() - c0, time.perf_counter() - t0))
        c, w = min(runs)
        pure += w
        cpu += c
        total_macs += len(models) * model_macs(t, batch.regions.shape[0], models[0])
    return pure, cpu, time.perf_counter() - start, total_macs


def bf16_report(models, sub) -> None:
    """bfloat16 autocast against float32 on the videos ``sub``: time and the accuracy cost."""
    pure16, cpu16, _, _ = run_inference(models, sub, autocast=True)
    pure32, cpu32, _, _ = run_inference(models, sub)
    errs, agree, reg_err = [], [], []
    for i, (_, grid, t) in enumerate(sub):
        _, batch = make_video(grid, t, seed=i)
        with torch.inference_mode():
            o32 = models[0](batch)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                o16 = models[0](batch)
        s32, s16 = models[0].scores(o32), models[0].scores(o16).float()
        errs.append(((s16 - s32).abs() / s32.abs().clamp_min(1e-12)).flatten())
        agree.append((s16.argmax(1) == s32.argmax(1)).float())
        reg_err.append((o16.regression.float() - o32.regression).abs().flatten())
    errs, agree, reg_err = torch.cat(errs), torch.cat(agree), torch.cat(reg_err)
    print(f"bfloat16 autocast on {len(sub)} videos: {pure16:.1f} s vs float32 {pure32:.1f} s "
          f"(x{pure32 / pure16:.2f}; CPU {cpu16:.1f} vs {cpu32:.1f} CPU-s, x{cpu32 / cpu16:.2f}); Eq. 16 scores relative error median {errs.median():.2e}, "
          f"99th pct {errs.quantile(0.99):.2e}, max {errs.max():.2e}; same top class {agree.mean():.1%}; "
          f"regression abs error max {reg_err.max():.2e}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--videos", type=int, default=212, help="test videos to run (default all 212; fewer: evenly spaced, extrapolated)")
    p.add_argument("--streams", type=int, default=2)
    p.add_argument("--train-videos", type=int, default=4, help="videos for forward+backward")
    p.add_argument("--reference-proposals", type=int, default=16, help="proposals a video timed with the reference")
    p.add_argument("--reference-videos", type=int, default=3)
    p.add_argument("--bf16-videos", type=int, default=10)
    p.add_argument("--repeats", type=int, default=1, help="float32 inference runs a video; the least counts")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, the cores); 1 gives "
                   "CPU-seconds that a loaded machine inflates least (no OpenMP spinning on a descheduled thread)")
    p.add_argument("--untuned", action="store_true", help="leave the process settings of dcltal/runtime.py "
                   "(OpenMP spinning, malloc) at the system's defaults")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {os.getloadavg()}; "
          f"process settings: {'system defaults' if args.untuned else 'dcltal runtime.tune_process()'}; region "
          f"pooling: {'compiled kernel' if native.library() is not None else 'torch (no compiled kernel)'}")
    (g32, c32), (g16, c16) = matmul_gflops(torch.float32), matmul_gflops(torch.bfloat16)
    print(f"matmul 4096^3: float32 {g32:.0f} GFLOP/s ({c32:.0f} GFLOP per CPU-second), "
          f"bfloat16 {g16:.0f} GFLOP/s ({c16:.0f} per CPU-second)")
    videos = test_videos()
    lengths = np.array([t for _, _, t in videos])
    print(f"{len(videos)} test videos, T = {lengths.min()}..{lengths.max()} (sum {lengths.sum()}) snippets, "
          f"{PROPOSALS} proposals each")
    all_videos = videos
    if args.videos < len(videos):  # an evenly spaced subset, extrapolated by matrix-product work
        videos = [videos[i] for i in np.linspace(0, len(videos) - 1, args.videos).round().astype(int)]
    torch.manual_seed(0)
    models = [Detector(D, C).eval() for _ in range(args.streams)]

    pure, cpu, wall, macs = run_inference(models, videos, repeats=args.repeats)
    bound, bound_cpu = 2 * macs / (g32 * 1e9), 2 * macs / (c32 * 1e9)
    print(f"inference float32, {len(videos)} videos x {args.streams} streams: {pure:.1f} s model "
          f"({wall:.1f} s with making the input), {cpu:.1f} CPU-s; matmul-bound {bound:.1f} s at {g32:.0f} GFLOP/s "
          f"-> {bound / pure:.0%} of it by wall time, {bound_cpu / cpu:.0%} by CPU time ({bound_cpu:.1f} CPU-s)")
    if len(videos) < len(all_videos):
        full = sum(model_macs(t, PROPOSALS, models[0]) for _, _, t in all_videos) * args.streams
        print(f"  subset of {len(videos)} evenly spaced videos; extrapolated to all {len(all_videos)} by the "
              f"matrix-product work (x{full / macs:.1f}): {pure * full / macs:.0f} s, {cpu * full / macs:.0f} CPU-s "
              f"(unloaded, 2 threads: ~{cpu * full / macs / 2:.0f} s); matmul-bound "
              f"{2 * full / (g32 * 1e9):.0f} s at {g32:.0f} GFLOP/s, {2 * full / 200e9:.0f} s at 200 GFLOP/s")
    print(f"peak memory so far (max RSS): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")

    # bfloat16 autocast: time and accuracy on a few videos
    sub = videos[: args.bf16_videos]
    if sub:
        bf16_report(models, sub)

    # forward + backward (training mode, dropout on), per video
    models[0].train()
    t_fb, n_fb = 0.0, 0
    for i, (_, grid, t) in enumerate(videos[: args.train_videos]):
        _, batch = make_video(grid, t, seed=i)
        t0 = time.perf_counter()
        out = models[0](batch)
        (out.cls_logits.sum() + out.completeness.sum() + out.regression.sum() + out.reconstruction.sum()).backward()
        t_fb += time.perf_counter() - t0
        n_fb += 1
    models[0].eval()
    per_video = pure / len(videos) / args.streams
    print(f"forward+backward, one stream, {PROPOSALS} proposals: {t_fb / n_fb:.2f} s a video "
          f"(forward alone {per_video:.2f} s a video)")

    # the per-proposal reference, on a subset of proposals, extrapolated
    ref_time, fast_time, ref_props = 0.0, 0.0, 0
    for i, (_, grid, t) in enumerate(videos[: args.reference_videos]):
        _, batch = make_video(grid, t, seed=i)
        keep = torch.arange(args.reference_proposals)
        small = type(batch)(batch.features, batch.video_offsets, batch.proposal_video[keep], batch.regions[keep])
        with torch.inference_mode():
            t0 = time.perf_counter()
            reference_forward(models[0], small)
            ref_time += time.perf_counter() - t0
            t0 = time.perf_counter()
            models[0](batch, reconstruction=False)
            fast_time += time.perf_counter() - t0
        ref_props += args.reference_proposals
    ref_per_video = ref_time / ref_props * PROPOSALS
    fast_per_video = fast_time / args.reference_videos
    print(f"reference (per proposal), {ref_props} proposals timed on {args.reference_videos} videos, extrapolated "
          f"to {PROPOSALS} a video: {ref_per_video:.1f} s a video vs {fast_per_video:.2f} s "
          f"-> x{ref_per_video / fast_per_video:.0f}; whole test set, both streams, extrapolated: "
          f"{ref_per_video * len(videos) * args.streams / 60:.0f} min")
    print(f"peak memory (max RSS): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB; "
          f"load average at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
