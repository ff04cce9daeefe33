"""The settings of the accuracy zoo: what each data set varies (docs/benchmarks.md says why).

A setting fixes the layout source (real THUMOS14 or ActivityNet v1.3 annotations), the feature
grid (width a stream, stride), how much class and boundary evidence each stream carries, the noise,
the proposals and the size. ``generator.write_setting`` turns one into a data directory.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

SHARED = "/work/shared/data"
THUMOS14_JSON = f"{SHARED}/thumos14/actionformer/thumos14.json"
ANET13_JSON = f"{SHARED}/activitynet13/activity_net.v1-3.derived.json"


@dataclass(frozen=True)
class Stream:
    """One feature stream. ``mean``: the features' mean value (I3D's pooled post-ReLU features: RGB
    about 0.3, Flow about 1.5); ``cls`` and ``bnd``: amplitudes of the class evidence and of the
    actionness / start / end evidence; ``noise``: standard deviation of the pre-ReLU noise."""
    mean: float
    cls: float
    bnd: float
    noise: float = 1.0


# I3D-like default: RGB sees what the action is, Flow sees when it moves (starts and stops)
RGB = Stream(mean=0.3, cls=1.2, bnd=0.5)
FLOW = Stream(mean=1.5, cls=0.5, bnd=1.2)


@dataclass(frozen=True)
class Setting:
    name: str
    why: str                      # one line for docs/benchmarks.md and the runner's table
    source: str = "thumos14"      # thumos14 | activitynet: whose annotations give the layout
    dim: int = 256                # feature columns a stream
    stride: int = 16              # frames between snippets (window 16 frames)
    videos_train: int = 80
    videos_test: int = 40
    max_duration: float = 240.0   # seconds; longer real videos are cropped to a window of this length
    classes_present: int = 0      # activitynet: classes the sampled videos come from (0: all)
    rgb: Stream = RGB
    flow: Stream = FLOW
    specific: float = 0.6         # class-specific evidence relative to that shared by a confusable pair
    proposals: str = "bsn"        # bsn: jittered around the truths + background; builtin: dcltal's generator
    seed: int = 0

    @property
    def config(self) -> str:
        return "configs/anet13_i3d.yaml" if self.source == "activitynet" else "configs/thumos14_i3d.yaml"

    @property
    def fps(self) -> float:
        return 30.0  # THUMOS14's videos are 30 fps (ActionFormer's file); ActivityNet's config assumes 30


SETTINGS = {s.name: s for s in [
    Setting("thumos_256_s16", "the reference: THUMOS14 layout, 2 x 256-d, stride 16, I3D-like streams"),
    Setting("thumos_1024_s16", "wide features (2 x 1024-d, I3D's width): more columns to learn from the same evidence",
            dim=1024, videos_train=40, videos_test=20),
    Setting("thumos_256_s4", "fine grid (stride 4, THUMOS14 I3D's): 4x the snippets, neighbours overlapping 75%",
            stride=4, videos_train=64, videos_test=32, max_duration=120.0),
    Setting("weak_flow", "Flow nearly uninformative: the fusion has to lean on RGB alone",
            flow=Stream(mean=1.5, cls=0.1, bnd=0.15)),
    Setting("high_noise", "noise 1.6x the reference in both streams: evidence buried, as in cluttered videos",
            rgb=dataclasses.replace(RGB, noise=1.6), flow=dataclasses.replace(FLOW, noise=1.6)),
    Setting("anet_256_s16", "ActivityNet v1.3 layout: 200-class model, 40 classes drawn, long instances, one class a video",
            source="activitynet", videos_train=150, videos_test=60, classes_present=40, max_duration=180.0),
    Setting("thumos_builtin", "the reference data with dcltal's built-in BMN-style proposals in place of BSN-like ones",
            proposals="builtin"),
]}

# Run apart (``run_zoo.py --settings thumos14_full``, about 4x the reference's training): the held-out
# set of issue 12, every real THUMOS14 video whole - the 200 validation videos to train on and the 212
# test videos to score - with the reference's synthetic streams.
LARGE = {s.name: s for s in [
    Setting("thumos14_full", "every real THUMOS14 video whole (200 to train, 212 to test), 2 x 256-d, stride 16",
            videos_train=200, videos_test=212, max_duration=float("inf")),
]}
KNOWN = {**SETTINGS, **LARGE}

# Sizes: each setting's training and scoring in 5-7 minutes on this shared 2-core machine with the
# shipped configs (measured: docs/benchmarks.md, "Measured"); the wider and the finer grid cost more a video.

# --quick: a size that runs the whole chain in a minute or two (the runner adds train.epochs=1)
QUICK = {"videos_train": 8, "videos_test": 4, "max_duration": 60.0}


def quick(setting: Setting) -> Setting:
    return dataclasses.replace(setting, name=f"{setting.name}_quick", **QUICK,
                               classes_present=min(setting.classes_present, 4) if setting.classes_present else 0)
