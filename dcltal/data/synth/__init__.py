"""The synthetic benchmark: a THUMOS14-like data set in the real file formats, deterministic by seed.

Its generative model (docs/synthetic.md) makes classification and localization need different
information, as the paper argues (Sections 1 and 3.2): class-discriminative take-offs, run-ups
shared by confusable pairs of classes, a class-correlated scene in the background too, and
class-agnostic start and end cues. Layout: ``layout.py`` (instances), ``features.py`` (snippet
features), ``proposals.py`` (BSN-like proposals); this module writes the files.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from tqdm import tqdm

from dcltal.data.proposals import write_bsn_csv
from dcltal.data.synth.features import STREAMS, PatternBank, synthesize
from dcltal.data.synth.layout import GRID, draw_layout, partner
from dcltal.data.synth.proposals import draw_proposals
from dcltal.errors import UserError
from dcltal.io import atomic_path, write_json, write_text

FORMAT = "dcltal-synth/1"
DEFAULTS = {"videos_train": 100, "videos_test": 50, "classes": 8, "dim": 64}  # why: docs/synthetic.md
SUBSETS = (("Validation", "video_validation"), ("Test", "video_test"))  # THUMOS14's names: Validation = train


def class_names(num_classes: int) -> list[str]:
    """``pair0_a``, ``pair0_b``, ``pair1_a``, ...: the confusable partners share a pair number;
    an odd last class is ``solo<p>``."""
    return [f"pair{c // 2}_{'ab'[c % 2]}" if partner(c, num_classes) != c else f"solo{c // 2}"
            for c in range(num_classes)]


def write_synthetic(out_dir: str | os.PathLike, seed: int = 0, videos_train: int = DEFAULTS["videos_train"],
                    videos_test: int = DEFAULTS["videos_test"], classes: int = DEFAULTS["classes"],
                    dim: int = DEFAULTS["dim"], progress: bool = True) -> dict:
    """Write OUT_DIR/annotations.json, features/<video>.npy ([T, 2*dim] float32: rgb then flow),
    proposals/<video>.csv (BSN) and classes.txt (CONTRACT §3). Same arguments, same bytes.

    Returns a summary: ``{"out_dir", "seed", "classes", "dim", "streams", "videos": {subset: n},
    "instances": {subset: n}, "snippets", "proposals"}``.
    """
    _check_arguments(out_dir, seed, videos_train, videos_test, classes, dim)
    out = Path(out_dir)
    names = class_names(classes)
    bank = PatternBank(np.random.default_rng(np.random.SeedSequence([seed, 0])), classes, dim)
    jobs = [(subset, prefix, i) for (subset, prefix), n in zip(SUBSETS, (videos_train, videos_test)) for i in range(n)]
    _remove_stale(out, {f"{prefix}_{i + 1:07d}" for _, prefix, i in jobs})
    database = {}
    summary = {"out_dir": str(out), "seed": seed, "classes": classes, "dim": dim,
               "streams": {"rgb": [0, dim], "flow": [dim, 2 * dim]},
               "videos": {s: 0 for s, _ in SUBSETS}, "instances": {s: 0 for s, _ in SUBSETS},
               "snippets": 0, "proposals": 0}
    for subset, prefix, i in tqdm(jobs, desc="synth", unit="video", disable=not progress):
        vid = f"{prefix}_{i + 1:07d}"
        # one seed sequence a video, split per concern: a change in one draw moves no other
        layout_rng, feature_rng, proposal_rng = (np.random.default_rng(s) for s in
                                                 np.random.SeedSequence([seed, 1, SUBSETS.index((subset, prefix)), i]).spawn(3))
        layout = draw_layout(layout_rng, classes)
        features = synthesize(layout, bank, feature_rng)  # [T, 2D]
        proposals = draw_proposals(proposal_rng, layout.true_segments, layout.segments, layout.duration, GRID)  # [N, 3]
        with atomic_path(out / "features" / f"{vid}.npy") as tmp:
            with open(tmp, "wb") as f:
                np.save(f, features)
        write_bsn_csv(out / "proposals" / f"{vid}.csv", proposals, layout.duration)
        database[vid] = {
            "subset": subset, "duration": round(layout.duration, 6), "fps": GRID.fps,
            "annotations": [{"label": names[c], "segment": [float(s), float(e)], "label_id": int(c)}
                            for (s, e), c in zip(layout.segments, layout.labels)],
        }
        summary["videos"][subset] += 1
        summary["instances"][subset] += len(layout.segments)
        summary["snippets"] += layout.num_snippets
        summary["proposals"] += len(proposals)
    write_text(out / "classes.txt", "".join(f"{n}\n" for n in names))
    write_json(out / "annotations.json", {"version": f"{FORMAT} seed={seed} classes={classes} dim={dim}",
                                          "database": database})
    return summary


def _check_arguments(out_dir, seed, videos_train, videos_test, classes, dim) -> None:
    for name, value, least in (("--videos-train", videos_train, 0), ("--videos-test", videos_test, 0),
                               ("--classes", classes, 2), ("--dim", dim, 4), ("--seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
            raise UserError(f"synth {name}: expected an integer >= {least}, got {value!r}")
    if videos_train + videos_test == 0:
        raise UserError("synth --videos-train and --videos-test are both 0: ask for at least one video")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UserError(f"synth OUT_DIR {out} is a file; give a directory (new or from an earlier dcltal synth)")
    if out.is_dir() and any(out.iterdir()) and not _is_synth_dir(out):
        raise UserError(f"synth OUT_DIR {out} holds other files; give an empty or new directory")


def _is_synth_dir(out: Path) -> bool:
    try:
        with open(out / "annotations.json") as f:
            return str(json.load(f).get("version", "")).startswith(FORMAT)
    except (OSError, ValueError, AttributeError):
        return False


def _remove_stale(out: Path, keep: set[str]) -> None:
    """An earlier synth run into the same directory may have written more videos: remove their
    files, so that the directory holds exactly the videos of the new annotations."""
    for sub, ext in (("features", ".npy"), ("proposals", ".csv")):
        folder = out / sub
        if folder.is_dir():
            for p in folder.glob(f"video_*{ext}"):
                if p.stem not in keep:
                    p.unlink()
