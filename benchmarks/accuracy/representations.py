"""Do the disentangled classification and localization representations differ at all? (issue 12, item 5)

For a trained checkpoint and its zoo setting's Test videos, per stream:
- ``feature_cos``: the mean cosine similarity of F_cls(t) and F_loc(t) (Eq. 4-5) over every snippet
  (1: the two representations point the same way everywhere);
- ``curve_r``: the mean Pearson correlation, over ground-truth instances, between the Fig. 1-style
  attention curves (Eq. 6-7: cosine of each snippet with the max-pooled proposal feature, over the
  instance and its 50% extended regions) of F_cls and of F_loc (1: the curves lie on top of each
  other, as the demo's Fig. 1 plot shows them);
- ``curve_gap``: the mean absolute difference between those two curves.

    python benchmarks/accuracy/representations.py zoo-runs --tag defaults     # every setting of a tag
    python benchmarks/accuracy/representations.py zoo-runs --tag defaults --settings weak_flow

Writes OUT/runs/<tag>/<setting>/representations.json and prints a markdown table.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from dcltal.viz.attention import attention_curves
from dcltal.viz.video import snippet_features

MAX_VIDEOS = 20  # the Test videos measured (the first, in id order): enough for a stable mean


def measure(checkpoint: Path, data: Path, streams: dict[str, list[int]], stride: int, fps: float = 30.0) -> dict:
    from dcltal.data.grid import TimeGrid
    from dcltal.engine.detection.predictor import Predictor

    predictor = Predictor.from_checkpoint(checkpoint, "cpu")
    db = json.loads((data / "annotations.json").read_text())["database"]
    ids = sorted(v for v, r in db.items() if r["subset"] == "Test")[:MAX_VIDEOS]
    grid = TimeGrid(fps=fps, stride=stride, window=predictor.cfg.data.feature_window)
    out = {}
    for stream, model in predictor.models.items():
        cosines, correlations, gaps = [], [], []
        a, b = streams[stream]
        for vid in ids:
            x = np.load(data / "features" / f"{vid}.npy")[:, a:b]
            feats = snippet_features(model, x)
            f_cls, f_loc = torch.from_numpy(feats["cls"]), torch.from_numpy(feats["loc"])
            cosines.append(torch.nn.functional.cosine_similarity(f_cls, f_loc, dim=1).mean().item())
            t = x.shape[0]
            for ann in db[vid]["annotations"]:
                s, e = ann["segment"]
                (lo,), (hi,) = grid.snippet_ranges([s], [e], t)
                (va,), (vb,) = grid.snippet_ranges([s - 0.5 * (e - s)], [e + 0.5 * (e - s)], t)
                if vb - va < 3:
                    continue
                curves = attention_curves({"cls": feats["cls"], "loc": feats["loc"]}, lo, hi, (va, vb))
                gaps.append(float(np.abs(curves["cls"] - curves["loc"]).mean()))
                if curves["cls"].std() > 0 and curves["loc"].std() > 0:
                    correlations.append(float(np.corrcoef(curves["cls"], curves["loc"])[0, 1]))
        out[stream] = {"feature_cos": float(np.mean(cosines)), "curve_r": float(np.mean(correlations)),
                       "curve_gap": float(np.mean(gaps)), "videos": len(ids), "instances": len(gaps)}
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", type=Path, help="the zoo's output folder (run_zoo.py --out)")
    p.add_argument("--tag", default="default")
    p.add_argument("--settings", default=None, help="comma-separated (default: every run of the tag)")
    args = p.parse_args()
    torch.set_num_threads(1)
    runs = args.out / "runs" / args.tag
    names = args.settings.split(",") if args.settings else sorted(d.name for d in runs.iterdir() if d.is_dir())
    print("| setting | stream | feature_cos | curve_r | curve_gap |\n|---|---|---|---|---|")
    for name in names:
        run = runs / name
        checkpoint = run / "checkpoints" / "last.pt"
        if not checkpoint.is_file():
            continue
        summary = json.loads((run / "summary.json").read_text()) if (run / "summary.json").is_file() else {}
        data = args.out / "data" / name
        zoo = json.loads((data / "zoo.json").read_text())["setting"]
        dim = zoo["dim"]
        result = measure(checkpoint, data, {"rgb": [0, dim], "flow": [dim, 2 * dim]}, zoo["stride"])
        (run / "representations.json").write_text(json.dumps({"setting": name, "tag": args.tag, **result,
                                                              "variant": summary.get("variant")}, indent=1))
        for stream, r in result.items():
            print(f"| {name} | {stream} | {r['feature_cos']:.3f} | {r['curve_r']:.3f} | {r['curve_gap']:.3f} |")


if __name__ == "__main__":
    main()
