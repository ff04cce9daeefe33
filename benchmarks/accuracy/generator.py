"""Semi-synthetic data for the accuracy zoo: real layouts, I3D-like synthetic features.

``python benchmarks/accuracy/generator.py SETTING OUT_DIR`` (or ``write_setting``) writes, in
dcltal's formats (CONTRACT §1): ``annotations.json`` (subsets ``Validation`` = train and ``Test``,
``fps`` and ``duration`` a video), ``features/<vid>.npy`` float32 ``[T, 2D]`` (RGB columns, then
Flow), ``proposals/<vid>.csv`` (BSN CSV; not for settings with built-in proposals), ``classes.txt``
and ``zoo.json`` (the setting and the statistics of what was written; written last, so its presence
says the directory is complete).

Not the demo's generator (dcltal/data/synth): the layout of every video (duration, instances,
their lengths and classes) is that of a real video sampled from THUMOS14 or ActivityNet v1.3, read
from /work/shared/data at run time. The features are drawn from a model of pooled I3D activations,
docs/benchmarks.md gives the equations. Same setting, same bytes (numpy Generators seeded from
the setting's seed and the video's index).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from settings import ANET13_JSON, KNOWN, THUMOS14_JSON, Setting, Stream, quick

VERSION = 1                 # stored in zoo.json; bump when the same setting would give other data
WINDOW = 16                 # frames a snippet covers (I3D's 16-frame clips)
SPATIAL = 1.0               # sd of the pre-ReLU activation across the spatial positions pooled into a snippet
STYLE = 0.3                 # sd of a per-video offset of every channel (camera, lighting)
DIRECTION_NORM = 16.0       # |direction| of every evidence component, the same at every width
# THUMOS14's classes in confusable pairs (same sport or same motion); ActivityNet's: neighbouring ids
THUMOS_PAIRS = [("CricketBowling", "CricketShot"), ("CliffDiving", "Diving"), ("HighJump", "LongJump"),
                ("PoleVault", "JavelinThrow"), ("HammerThrow", "ThrowDiscus"), ("Shotput", "CleanAndJerk"),
                ("BasketballDunk", "VolleyballSpiking"), ("TennisSwing", "GolfSwing"),
                ("BaseballPitch", "SoccerPenalty"), ("Billiards", "FrisbeeCatch")]


@dataclass
class Video:
    id: str
    subset: str
    duration: float          # seconds
    segments: np.ndarray     # [n, 2] seconds
    labels: np.ndarray       # [n] class ids


# -- layout: real videos, sampled and cropped -------------------------------------------------------
def real_pools(setting: Setting, rng: np.random.Generator) -> tuple[list[str], np.ndarray, dict[str, list]]:
    """Class names, each class's confusable partner, and per split the real videos to sample from:
    (duration, segments [n, 2], labels [n]), videos without instances left out."""
    if setting.source == "thumos14":
        db = json.loads(Path(THUMOS14_JSON).read_text())["database"]
        ids = {a["label"]: a["label_id"] for v in db.values() for a in v["annotations"]}
        classes = [name for name, _ in sorted(ids.items(), key=lambda kv: kv[1])]
        partner = np.arange(len(classes))
        for a, b in THUMOS_PAIRS:
            partner[ids[a]], partner[ids[b]] = ids[b], ids[a]
        splits, allowed = {"Validation": "Validation", "Test": "Test"}, set(range(len(classes)))
    else:
        db = json.loads(Path(ANET13_JSON).read_text())["database"]
        classes = sorted({a["label"] for v in db.values() for a in v["annotations"]})
        partner = np.arange(len(classes)) ^ 1  # 2k <-> 2k + 1
        splits = {"Validation": "training", "Test": "validation"}
        k = setting.classes_present or len(classes)
        allowed = set(rng.choice(len(classes), k, replace=False).tolist())
    index = {c: i for i, c in enumerate(classes)}
    pools: dict[str, list] = {}
    for ours, theirs in splits.items():
        pools[ours] = []
        for v in db.values():
            if v["subset"] != theirs or not v["annotations"]:
                continue
            seg = np.clip(np.array([a["segment"] for a in v["annotations"]], dtype=np.float64), 0, v["duration"])
            lab = np.array([index[a["label"]] for a in v["annotations"]])
            keep = seg[:, 1] - seg[:, 0] >= 0.3  # ActivityNet has zero-length segments
            if keep.any() and set(lab[keep].tolist()) <= allowed:
                pools[ours].append((float(v["duration"]), seg[keep], lab[keep]))
    return classes, partner, pools


def crop(duration: float, seg: np.ndarray, lab: np.ndarray, limit: float, rng: np.random.Generator):
    """A window of at most ``limit`` seconds holding at least one whole instance, the instances
    wholly inside it (shifted to the window), so a long video fits the zoo's time budget."""
    if duration <= limit:
        return duration, seg, lab
    i = rng.integers(len(seg))
    lo, hi = max(0.0, seg[i, 1] - limit), min(seg[i, 0], duration - limit)
    start = rng.uniform(lo, hi) if hi > lo else min(seg[i, 0], duration - limit)
    inside = (seg[:, 0] >= start) & (seg[:, 1] <= start + limit)
    if not inside.any():  # an instance longer than the window: keep it, cut to the window
        inside = np.arange(len(seg)) == i
    return limit, np.clip(seg[inside] - start, 0, limit), lab[inside]


def sample_videos(setting: Setting, pools: dict[str, list], rng: np.random.Generator) -> list[Video]:
    videos = []
    for subset, n, prefix in (("Validation", setting.videos_train, "zoo_train"), ("Test", setting.videos_test, "zoo_test")):
        pool = pools[subset]
        for k, j in enumerate(rng.choice(len(pool), n, replace=n > len(pool))):
            duration, seg, lab = crop(*pool[j], setting.max_duration, rng)
            order = np.argsort(seg[:, 0], kind="stable")
            videos.append(Video(f"{prefix}_{k:05d}", subset, round(duration, 2), np.round(seg[order], 2), lab[order]))
    return videos


# -- features: pooled post-ReLU activations of evidence plus noise ----------------------------------
@dataclass
class StreamModel:
    """A stream's fixed parts, drawn once a setting: one direction a kind of evidence, a bias and a
    heavy-tailed gain a channel (times the scale that gives the stream its mean, set by ``calibrate``)."""
    params: Stream
    actionness: np.ndarray   # [3, D]: inside an action, its start, its end
    pair: np.ndarray         # [P, D]: the motion a confusable pair shares
    specific: np.ndarray     # [C, D]: what tells a class from its partner
    scene: np.ndarray        # [P, D]: the context a pair's videos share
    bias: np.ndarray         # [D]
    gain: np.ndarray         # [D]


def gauss_relu_mean(u: np.ndarray) -> np.ndarray:
    """E[relu(u + n)], n ~ N(0, 1): u Phi(u) + phi(u) (Phi by the tanh approximation, |error| < 2e-4;
    numpy has no erf)."""
    cdf = 0.5 * (1.0 + np.tanh(0.7978845608 * (u + 0.044715 * u ** 3)))
    return u * cdf + np.exp(-0.5 * u * u) / np.sqrt(2 * np.pi)


def stream_model(params: Stream, dim: int, classes: int, rng: np.random.Generator) -> StreamModel:
    pairs = (classes + 1) // 2

    def directions(n):
        return rng.standard_normal((n, dim)) * (DIRECTION_NORM / np.sqrt(dim))

    bias = rng.normal(-0.5, 0.5, dim)
    gain = rng.lognormal(0.0, 0.5, dim)
    gain[rng.random(dim) < 0.02] *= 3.0  # a few channels far larger than the rest, as in I3D
    return StreamModel(params, directions(3), directions(pairs), directions(classes), directions(pairs), bias, gain)


def calibrate(models: list[StreamModel], videos: list[Video], setting: Setting, partner: np.ndarray,
              seed: np.random.SeedSequence) -> None:
    """Scale each stream's gains so that its features average ``Stream.mean`` over a few videos."""
    rng = np.random.default_rng(seed)
    x = np.concatenate([video_features(v, num_snippets(v.duration, setting), setting, models, partner, rng)
                        for v in videos[:5]])
    for i, sm in enumerate(models):
        sm.gain = sm.gain * (sm.params.mean / float(x[:, i * setting.dim:(i + 1) * setting.dim].mean()))


def coverage(grid_start: np.ndarray, window: float, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[T, m] share of each snippet's window [grid_start, grid_start + window) inside [a_m, b_m]:
    a snippet feature averages its frames, so short evidence is blurred over the window."""
    lo = np.maximum(grid_start[:, None], a[None])
    hi = np.minimum(grid_start[:, None] + window, b[None])
    return np.clip(hi - lo, 0, None) / window


def smoothed_noise(rng: np.random.Generator, t: int, dim: int, width: int) -> np.ndarray:
    """[t, dim] unit-variance noise averaged over ``width`` consecutive snippets (a moving box)."""
    white = rng.standard_normal((t + width - 1, dim)).astype(np.float32)
    c = np.concatenate([np.zeros((1, dim), np.float32), np.cumsum(white, axis=0)])
    return (c[width:] - c[:-width]) / np.sqrt(width)


def video_features(video: Video, t: int, setting: Setting, models: list[StreamModel], partner: np.ndarray,
                   rng: np.random.Generator) -> np.ndarray:
    """[T, 2D] float32 features of one video, RGB columns then Flow."""
    fps, window = setting.fps, WINDOW / setting.fps
    starts = np.arange(t) * setting.stride / fps
    s, e, lab = video.segments[:, 0], video.segments[:, 1], video.labels
    n, length = len(lab), e - s
    pair = pair_index(partner)[lab]
    g = rng.uniform(0.6, 1.4, n)               # instance strength
    h = rng.uniform(0.3, 1.0, n)               # strength of its discriminative moment
    edge = np.clip(0.15 * length, 0.3, 1.5)    # half-width of the start and end transients
    main = np.bincount(lab).argmax()
    scene_pair = pair_index(partner)[main] if rng.random() < 0.75 else rng.integers(len(models[0].scene))
    # unannotated distractors in the background: a pair's motion without the action (a run-up, a replay)
    m = rng.poisson(1.5)
    d_len = rng.choice(length, m) if m else np.zeros(0)
    d_start = rng.uniform(0, max(video.duration - 1, 0.0), m)
    clear = ~((d_start[:, None] < e[None] + 0.5) & (d_start[:, None] + d_len[:, None] > s[None] - 0.5)).any(axis=1)
    d_start, d_len, d_pair = d_start[clear], d_len[clear], rng.integers(len(models[0].pair), size=clear.sum())

    # the evidence of the whole video: intervals [a, b], which component, amplitude per unit of cls / bnd
    mid_a, mid_b = s + 0.3 * length, s + 0.7 * length
    a = np.concatenate([s, s - edge, e - edge, s, mid_a, [0.0], d_start, d_start])
    b = np.concatenate([e, s + edge, e + edge, e, mid_b, [video.duration], d_start + d_len, d_start + d_len])
    cover = coverage(starts, window, a, b)                                  # [T, m]
    out = []
    for sm in models:
        p = sm.params
        comp = np.concatenate([np.repeat(sm.actionness[:1], n, 0), np.repeat(sm.actionness[1:2], n, 0),
                               np.repeat(sm.actionness[2:3], n, 0), sm.pair[pair],
                               sm.specific[lab], sm.scene[[scene_pair]], sm.actionness[[0] * len(d_pair)],
                               sm.pair[d_pair]])                            # [m, D]
        amp = np.concatenate([g * p.bnd, 1.2 * p.bnd * np.ones(2 * n), g * p.cls, h * p.cls * setting.specific,
                              [0.4 * p.cls], 0.5 * p.bnd * np.ones(len(d_pair)), 0.7 * p.cls * np.ones(len(d_pair))])
        signal = (cover * amp) @ comp                                        # [T, D]
        style = rng.normal(0, STYLE, setting.dim)
        # half the noise fast (shared by the overlapping windows of a fine grid), half a drift over ~2 s
        overlap = max(1, WINDOW // setting.stride)
        drift = max(1, round(2.0 * fps / setting.stride))
        noise = (smoothed_noise(rng, t, setting.dim, overlap) + smoothed_noise(rng, t, setting.dim, drift)) / np.sqrt(2)
        z = (sm.bias + style + signal + p.noise * noise) / SPATIAL
        out.append(sm.gain * SPATIAL * gauss_relu_mean(z))
    return np.concatenate(out, axis=1).astype(np.float32)


def pair_index(partner: np.ndarray) -> np.ndarray:
    """[C] the index of each class's pair, pairs numbered by their smaller class id's rank."""
    lead = np.minimum(np.arange(len(partner)), partner)
    return np.unique(lead, return_inverse=True)[1]


def num_snippets(duration: float, setting: Setting) -> int:
    return max(1, int(np.floor((duration * setting.fps - WINDOW) / setting.stride)) + 1)


# -- proposals: BSN-like ------------------------------------------------------------------------------
def tiou(p: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """[N, M] temporal IoU of segments [N, 2] and [M, 2]."""
    inter = np.clip(np.minimum(p[:, None, 1], gt[None, :, 1]) - np.maximum(p[:, None, 0], gt[None, :, 0]), 0, None)
    union = (p[:, 1] - p[:, 0])[:, None] + (gt[:, 1] - gt[:, 0])[None] - inter
    return inter / np.maximum(union, 1e-9)


def bsn_proposals(video: Video, rng: np.random.Generator) -> np.ndarray:
    """[N, 3] (start, end, score) seconds, best first: 8 jittered copies and 2 parts of every truth,
    40 anywhere (most on background), scored by their best tIoU with a truth through noise
    (a proposal scorer is right on average, not each time); the best 200 kept, as BSN's top 200."""
    seg, d = video.segments, video.duration
    length = seg[:, 1] - seg[:, 0]
    centre = np.repeat(seg.mean(axis=1), 8) + rng.normal(0, 0.2, 8 * len(seg)) * np.repeat(length, 8)
    size = np.repeat(length, 8) * np.exp(rng.normal(0, 0.25, 8 * len(seg)))
    jittered = np.stack([centre - size / 2, centre + size / 2], 1)
    share = rng.uniform(0.2, 0.6, 2 * len(seg)) * np.repeat(length, 2)
    part_start = np.repeat(seg[:, 0], 2) + rng.random(2 * len(seg)) * (np.repeat(length, 2) - share)
    parts = np.stack([part_start, part_start + share], 1)
    bg_len = rng.choice(length, 40) * np.exp(rng.normal(0, 0.7, 40))
    bg_start = rng.uniform(0, d, 40)
    background = np.stack([bg_start, bg_start + bg_len], 1)
    props = np.clip(np.concatenate([jittered, parts, background]), 0, d)
    props = props[props[:, 1] - props[:, 0] > 0.1]
    best = tiou(props, seg).max(axis=1)
    score = np.clip(0.6 * best + 0.25 + rng.normal(0, 0.12, len(props)), 0.01, 1.0)
    order = np.argsort(-score, kind="stable")[:200]
    return np.column_stack([props, score])[order]


# -- the data directory --------------------------------------------------------------------------------
def write_setting(setting: Setting, out: Path) -> dict:
    """Write ``setting``'s data into ``out`` (replacing it) and return the statistics stored in zoo.json."""
    from dcltal.data.annotations import load_annotations
    from dcltal.eval import evaluate_proposals

    seeds = np.random.SeedSequence(setting.seed).spawn(4)
    layout_rng, model_rng = np.random.default_rng(seeds[0]), np.random.default_rng(seeds[1])
    classes, partner, pools = real_pools(setting, layout_rng)
    videos = sample_videos(setting, pools, layout_rng)
    models = [stream_model(p, setting.dim, len(classes), model_rng) for p in (setting.rgb, setting.flow)]
    calibrate(models, videos, setting, partner, seeds[3])
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "features").mkdir(parents=True)
    bsn = setting.proposals == "bsn"
    if bsn:
        (tmp / "proposals").mkdir()
    database, lengths, proposals = {}, [], {}
    for k, (v, seed) in enumerate(zip(videos, seeds[2].spawn(len(videos)))):
        feat_rng, prop_rng = (np.random.default_rng(s) for s in seed.spawn(2))
        t = num_snippets(v.duration, setting)
        np.save(tmp / "features" / f"{v.id}.npy", video_features(v, t, setting, models, partner, feat_rng))
        lengths.append(t)
        database[v.id] = {"subset": v.subset, "duration": v.duration, "fps": setting.fps, "annotations": [
            {"label": classes[c], "label_id": int(c), "segment": [float(a), float(b)]} for (a, b), c in zip(v.segments, v.labels)]}
        if bsn:
            props = bsn_proposals(v, prop_rng)
            proposals[v.id] = props
            rows = [f"{a / v.duration:.6f},{b / v.duration:.6f},{x:.6f}" for a, b, x in props]
            (tmp / "proposals" / f"{v.id}.csv").write_text("xmin,xmax,score\n" + "\n".join(rows) + "\n")
    (tmp / "annotations.json").write_text(json.dumps({"version": f"dcltal accuracy zoo {setting.name}", "database": database}))
    (tmp / "classes.txt").write_text("\n".join(classes) + "\n")
    stats = statistics(videos, lengths, classes)
    if bsn:
        recall = evaluate_proposals(load_annotations(tmp / "annotations.json", tmp / "classes.txt"), proposals, "Test")
        stats["proposal_recall"] = {k: recall[k] for k in ("AR@100", "recall@0.5", "recall@0.7")}
    (tmp / "zoo.json").write_text(json.dumps({"generator": VERSION, "setting": dataclasses.asdict(setting), "stats": stats}, indent=1))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return stats


def statistics(videos: list[Video], lengths: list[int], classes: list[str]) -> dict:
    counts = [len(v.labels) for v in videos]
    inst = np.concatenate([v.segments[:, 1] - v.segments[:, 0] for v in videos])
    return {"classes": len(classes), "classes_present": len({int(c) for v in videos for c in v.labels}),
            "videos": {s: sum(v.subset == s for v in videos) for s in ("Validation", "Test")},
            "snippets": [int(min(lengths)), int(np.median(lengths)), int(max(lengths))],
            "instances_per_video": [float(np.mean(counts)), int(max(counts))],
            "instance_seconds": [float(np.median(inst)), float(np.percentile(inst, 90))],
            "two_class_videos": float(np.mean([len(set(v.labels.tolist())) > 1 for v in videos]))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("setting", choices=sorted(KNOWN))
    parser.add_argument("out", type=Path)
    parser.add_argument("--quick", action="store_true", help="the tiny size the runner's --quick uses")
    args = parser.parse_args(argv)
    setting = quick(KNOWN[args.setting]) if args.quick else KNOWN[args.setting]
    print(json.dumps(write_setting(setting, args.out), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
