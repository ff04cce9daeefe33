"""Security: pickles that run code, YAML tags, a planted kernel library, video ids that are paths.

Code that would run writes a marker file; the case reports ``code execution`` when the marker is there.
"""
from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess

import numpy as np

from harness import CODE_EXEC, SILENT, Outcome, Workspace, copy_tree, refused, succeeded
from registry import case


class _Evil:
    """Unpickling this runs ``touch MARKER``."""

    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _marked(marker, outcome: Outcome) -> Outcome:
    return Outcome(CODE_EXEC, f"{marker.name} written") if marker.exists() else outcome


def _evil_pickle(path, marker) -> None:
    with open(path, "wb") as f:
        pickle.dump({"model": _Evil(marker)}, f)


@case("security", quick=True)
def pickle_checkpoint_infer(ws):
    d = ws.fresh("pickle_infer")
    _evil_pickle(d / "evil.pt", d / "RAN")
    p = ws.run("infer", ws.cfg, "--checkpoint", d / "evil.pt", "--out", d / "r.json", "--quiet")
    return _marked(d / "RAN", refused(p, "evil.pt"))


@case("security")
def pickle_checkpoint_resume(ws):
    d = ws.fresh("pickle_resume")
    work = copy_tree(ws.root / "w", d / "w")
    _evil_pickle(work / "checkpoints" / "last.pt", d / "RAN")
    p = ws.run("train", ws.cfg, "--work-dir", work, "--resume", "--quiet", "--set", "train.epochs=2")
    return _marked(d / "RAN", refused(p, "last.pt"))


@case("security")
def pickle_checkpoint_export(ws):
    d = ws.fresh("pickle_export")
    _evil_pickle(d / "evil.pt", d / "RAN")
    return _marked(d / "RAN", refused(ws.run("export", d / "evil.pt", "--out", d / "m"), "evil.pt"))


@case("security")
def pickle_feature_files(ws):
    for suffix in (".pt", ".pkl"):
        d = ws.fresh(f"pickle_features{suffix}")
        marker = d / "RAN"
        with open(d / "evil", "wb") as f:
            pickle.dump(_Evil(marker), f)
        feats = ws.features_with(f"pf{suffix}", ws.te, (suffix, (d / "evil").read_bytes()))
        p = ws.run("infer", ws.cfg, "--checkpoint", ws.checkpoint, "--out", d / "r.json", "--quiet",
                   "--set", f"data.features={feats}")
        outcome = _marked(marker, refused(p, ws.te))
        if outcome.kind != "clean":
            return outcome
    return outcome


@case("security", quick=True)
def yaml_tag_in_config(ws):
    d = ws.fresh("yaml_tag")
    (d / "cfg.yaml").write_text(f"train: !!python/object/apply:os.system ['touch {d / 'RAN'}']\n")
    return _marked(d / "RAN", refused(ws.run("params", d / "cfg.yaml"), "cfg.yaml"))


@case("security")
def yaml_tag_in_set(ws):
    d = ws.fresh("yaml_set")
    p = ws.run("params", ws.cfg, "--set", f"train.seed=!!python/object/apply:os.system ['touch {d / 'RAN'}']")
    return _marked(d / "RAN", refused(p, "--set"))


PLANT = r"""
#include <stdio.h>
__attribute__((constructor)) static void planted(void) {
    FILE *f = fopen("%s", "w");
    if (f) fclose(f);
}
"""


@case("security", quick=True)
def planted_kernel_library(ws):
    """Each built library of the kernel cache replaced by one whose constructor writes a marker."""
    built = sorted(ws.cache.rglob("*.so"))
    if not built or shutil.which("cc") is None:
        return Outcome("skipped", "no kernel library built here, or no C compiler")
    d = ws.fresh("planted")
    cache = copy_tree(ws.cache, d / "cache")
    (d / "plant.c").write_text(PLANT % (d / "RAN"))
    for so in cache.rglob("*.so"):
        subprocess.run(["cc", "-shared", "-fPIC", "-o", str(so), str(d / "plant.c")], check=True)
    env, ws.env = ws.env, {**ws.env, "DCLTAL_CACHE_DIR": str(cache)}
    try:
        p = ws.run("infer", ws.cfg, "--checkpoint", ws.checkpoint, "--out", d / "r.json", "--quiet")
    finally:
        ws.env = env
    return _marked(d / "RAN", succeeded(p))


def _ids_as_paths(ws: Workspace, name: str, make_id) -> Outcome:
    """A Test video whose id points outside data.features, where a feature file waits to be read."""
    d = ws.fresh(name)
    feats = d / "data" / "features"
    feats.mkdir(parents=True)
    outside = d / "outside"
    np.save(f"{outside}.npy", ws.features_of(ws.te))
    vid = make_id(feats, outside)
    obj = json.loads(ws.annotations.read_text())
    obj["database"] = {vid: obj["database"][ws.te]}
    (d / "gt.json").write_text(json.dumps(obj))
    props = {"results": {vid: [{"segment": [2.0, 6.0], "score": 0.9}]}}
    (d / "p.json").write_text(json.dumps(props))
    p = ws.run("infer", ws.cfg, "--checkpoint", ws.checkpoint, "--out", d / "r.json", "--quiet",
               "--set", f"data.annotations={d / 'gt.json'}", f"data.features={feats}", f"data.proposals={d / 'p.json'}")
    if p.rc == 0:
        return Outcome(SILENT, f"video id {vid!r} read a file outside data.features")
    return refused(p, vid)


@case("security", quick=True)
def video_id_with_dot_dot(ws):
    return _ids_as_paths(ws, "id_dotdot", lambda feats, outside: "../../outside")


@case("security")
def video_id_absolute(ws):
    return _ids_as_paths(ws, "id_abs", lambda feats, outside: str(outside))
