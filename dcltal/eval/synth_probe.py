"""How hard is a synthetic benchmark? Its statistics and linear probes, as docs/synthetic.md reports them.

``python -m dcltal.eval.synth_probe OUT_DIR`` reads a ``dcltal synth`` output and prints
(1) instance and proposal statistics, (2) the accuracy of a ridge classifier of ground-truth
instances on features mean-pooled over the whole instance, its take-off or its run-up, and
(3) the mAP of a "ridge detector" (class from the pooled proposal, tIoU regressed from the
proposal, its extended regions and its edges; NMS) under the THUMOS14 protocol. A linear model
shows the data is learnable yet far from solved, whatever the trained detector later does.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from dcltal.data.annotations import load_annotations
from dcltal.data.proposals import load_proposals
from dcltal.data.segments import pairwise_tiou
from dcltal.data.synth.layout import GRID

# regions pooled per proposal [s, e] of length L, as (start, end) offsets in units of L
REGIONS = ((0, 0), (-0.5, -1), (1, 0.5), (-0.1, -0.9), (0.9, 0.1))  # inside, left/right extension, edges
PARTS = {"instance": (0, 0), "take-off": (0.45, -0.3), "run-up": (0, -0.65)}


def _pool(x: np.ndarray, seg: np.ndarray) -> np.ndarray:
    """[N, C] mean of ``x`` [T, C] over the snippets of each segment (prefix sums)."""
    lo, hi = GRID.snippet_ranges(seg[:, 0], seg[:, 1], len(x))
    cs = np.concatenate([np.zeros((1, x.shape[1])), np.cumsum(x, axis=0)])
    return (cs[hi] - cs[lo]) / (hi - lo)[:, None]


def _shift(seg: np.ndarray, offsets) -> np.ndarray:
    length = seg[:, 1:] - seg[:, :1]
    return seg + length * np.asarray(offsets, dtype=np.float64)


def _ridge(x: np.ndarray, y: np.ndarray, lam: float) -> np.ndarray:
    x = np.column_stack([x, np.ones(len(x))])
    return np.linalg.solve(x.T @ x + lam * np.eye(x.shape[1]), x.T @ y)


def _apply(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    return np.column_stack([x, np.ones(len(x))]) @ w


def _nms(seg: np.ndarray, score: np.ndarray, iou: float) -> np.ndarray:
    order, keep = np.argsort(-score, kind="stable"), []
    while len(order):
        keep.append(order[0])
        rest = order[1:]
        order = rest[pairwise_tiou(seg[order[:1]], seg[rest])[0] < iou]
    return np.array(keep, dtype=np.int64)


def probe(out_dir: str | Path, nms_iou: float = 0.4) -> dict:
    """The figures of docs/synthetic.md for one synth output directory."""
    out = Path(out_dir)
    ann = load_annotations(out / "annotations.json", out / "classes.txt")
    props = load_proposals(out / "proposals", ann.videos, GRID.fps)
    num_classes, rows = len(ann.classes), {}
    for vid, v in ann.videos.items():
        x = np.load(out / "features" / f"{vid}.npy").astype(np.float64)  # [T, 2D]
        p = props[vid]
        iou = pairwise_tiou(p[:, :2], v.segments)  # [N, M]
        centre = GRID.centres(len(x))
        near = ((centre[:, None] > v.segments[:, 0] - 1) & (centre[:, None] < v.segments[:, 1] + 1)).any(axis=1)
        rows[vid] = {"parts": {k: _pool(x, _shift(v.segments, o)) for k, o in PARTS.items()},
                     "background": x[~near].mean(axis=0, keepdims=True), "main": np.bincount(v.labels).argmax(),
                     "proposal": np.concatenate([_pool(x, _shift(p[:, :2], o)) for o in REGIONS], axis=1),
                     "best": iou.max(axis=1), "matched": v.labels[iou.argmax(axis=1)], "width": x.shape[1]}
    train, test = ann.in_subset("Validation"), ann.in_subset("Test")
    width = rows[train[0].id]["width"]
    streams = {"rgb": np.arange(width // 2), "flow": np.arange(width // 2, width), "both": np.arange(width)}
    onehot = np.eye(num_classes)
    report = {"statistics": _statistics(ann, props)}
    for name, cols in streams.items():
        ytr = np.concatenate([v.labels for v in train])
        yte = np.concatenate([v.labels for v in test])
        for part in PARTS:
            xtr = np.concatenate([rows[v.id]["parts"][part][:, cols] for v in train])
            xte = np.concatenate([rows[v.id]["parts"][part][:, cols] for v in test])
            pred = _apply(_ridge(xtr, onehot[ytr], 1.0), xte).argmax(axis=1)
            report[f"accuracy {part} {name}"] = float(np.mean(pred == yte))
            report[f"pair accuracy {part} {name}"] = float(np.mean(pred // 2 == yte // 2))
        # the scene: the background alone tells the video's main class
        xtr = np.concatenate([rows[v.id]["background"][:, cols] for v in train])
        pred = _apply(_ridge(xtr, onehot[[rows[v.id]["main"] for v in train]], 1.0),
                      np.concatenate([rows[v.id]["background"][:, cols] for v in test])).argmax(axis=1)
        report[f"accuracy main class from background {name}"] = float(np.mean(pred == [rows[v.id]["main"] for v in test]))
        # localization: a proposal's tIoU from its inside alone, and with its context (extensions, edges)
        for label, regions in (("inside only", 1), ("with context", len(REGIONS))):
            idx = np.concatenate([cols + k * width for k in range(regions)])
            w = _ridge(np.concatenate([rows[v.id]["proposal"][:, idx] for v in train]),
                       np.concatenate([rows[v.id]["best"] for v in train]), 10.0)
            truth = np.concatenate([rows[v.id]["best"] for v in test])
            guess = _apply(w, np.concatenate([rows[v.id]["proposal"][:, idx] for v in test]))
            report[f"tIoU R2 {label} {name}"] = float(1 - np.mean((guess - truth) ** 2) / np.var(truth))
        report[f"ridge detector mAP@0.5 {name}"] = _ridge_detector(ann, rows, props, train, test, cols, width, nms_iou)
    return report


def _ridge_detector(ann, rows, props, train, test, cols, width, nms_iou) -> float:
    from dcltal.eval import evaluate_results

    idx = np.concatenate([cols + k * width for k in range(len(REGIONS))])  # the stream's columns of each region
    xtr = np.concatenate([rows[v.id]["proposal"][:, idx] for v in train])
    best = np.concatenate([rows[v.id]["best"] for v in train])
    fg = best > 0.5
    w_loc = _ridge(xtr, best, 10.0)
    w_cls = _ridge(xtr[fg][:, :len(cols)], np.eye(len(ann.classes))[np.concatenate([rows[v.id]["matched"] for v in train])[fg]], 10.0)
    results = {}
    for v in test:
        x = rows[v.id]["proposal"][:, idx]
        quality = np.clip(_apply(w_loc, x), 0, 1)  # [N]
        logits = 5 * _apply(w_cls, x[:, :len(cols)])
        prob = np.exp(logits - logits.max(axis=1, keepdims=True))
        score = quality[:, None] * prob / prob.sum(axis=1, keepdims=True)  # [N, C]
        dets = []
        for c, name in enumerate(ann.classes):
            keep = _nms(props[v.id][:, :2], score[:, c], nms_iou)
            dets += [{"label": name, "score": float(score[i, c]), "segment": props[v.id][i, :2].tolist()} for i in keep]
        results[v.id] = dets
    ev = evaluate_results(ann, {"results": results}, "Test", [0.5], "thumos14")
    return float(ev["mAP"][0])


def _statistics(ann, props) -> dict:
    n = np.array([len(v.segments) for v in ann.videos.values()])
    length = np.concatenate([v.segments[:, 1] - v.segments[:, 0] for v in ann.videos.values()])
    dur = np.array([v.duration for v in ann.videos.values()])
    cover = np.array([(v.segments[:, 1] - v.segments[:, 0]).sum() / v.duration for v in ann.videos.values()])
    recall = np.concatenate([pairwise_tiou(props[k][:, :2], v.segments).max(axis=0) for k, v in ann.videos.items()])
    return {"instances a video (mean, median, p10, p90, max)": [n.mean(), np.median(n), *np.percentile(n, [10, 90]), n.max()],
            "length s (mean, median, p5, p95)": [length.mean(), np.median(length), *np.percentile(length, [5, 95])],
            "duration s (mean, median)": [dur.mean(), np.median(dur)], "coverage": cover.mean(),
            "videos with two classes": float(np.mean([len(set(v.labels)) > 1 for v in ann.videos.values()])),
            "proposals a video": float(np.mean([len(p) for p in props.values()])),
            "proposal recall at tIoU 0.5, 0.7, 0.9": [float(np.mean(recall >= t)) for t in (0.5, 0.7, 0.9)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", help="a dcltal synth output directory")
    for key, value in probe(parser.parse_args().out_dir).items():
        if isinstance(value, dict):
            for k, v in value.items():
                print(f"{k}: {np.round(v, 3).tolist()}")
        else:
            print(f"{key}: {value:.3f}")


if __name__ == "__main__":
    main()
