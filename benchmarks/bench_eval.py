"""Speed of `dcltal eval` (issue 2, part 5): the vectorised protocols vs the slow reference, and the
whole command vs a fresh Python that only json.loads its two files.

    .venv/bin/python benchmarks/bench_eval.py [--detections 200000 --videos 5000 --classes 200]

Input (random but realistic, seeded): ActivityNet-like videos of 30-240 s with ground truth of one
or two classes (1-6 instances a class); a detector's output of 40 detections a video, 70% jittered
around the ground truth (scores that track the tIoU) and 30% anywhere, of any class.
Targets: evaluation >= 20x the reference with identical numbers; command <= 2x the json.load time.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from eval_reference import activitynet_reference, thumos14_reference  # noqa: E402

from dcltal.data.annotations import load_annotations  # noqa: E402
from dcltal.eval import evaluate_results  # noqa: E402


def make_case(n_det: int, n_videos: int, n_classes: int, seed: int = 0) -> tuple[dict, dict]:
    rng = np.random.default_rng(seed)
    classes = [f"class_{c:03d}" for c in range(n_classes)]
    database, results = {}, {}
    per_video = np.full(n_videos, n_det // n_videos)
    per_video[: n_det - per_video.sum()] += 1
    for v in range(n_videos):
        vid, duration = f"video_{v:05d}", float(rng.uniform(30, 240))
        gt = []
        for c in rng.choice(n_classes, size=int(rng.integers(1, 3)), replace=False):
            for _ in range(int(rng.integers(1, 7))):
                length = float(rng.uniform(2, duration / 4))
                start = float(rng.uniform(0, duration - length))
                gt.append({"label": classes[c], "segment": [round(start, 2), round(start + length, 2)]})
        database[vid] = {"subset": "validation", "duration": round(duration, 2), "annotations": gt}
        dets = []
        for _ in range(per_video[v]):
            if rng.random() < 0.7:
                g = gt[int(rng.integers(len(gt)))]
                s, e = g["segment"]
                jitter = rng.normal(0, 0.25 * (e - s), 2)
                seg = sorted([float(np.clip(s + jitter[0], 0, duration)), float(np.clip(e + jitter[1], 0, duration))])
                label = g["label"] if rng.random() < 0.8 else classes[int(rng.integers(n_classes))]
                score = float(np.clip(1 - np.abs(jitter).sum() / (e - s) + rng.normal(0, 0.1), 0.001, 1))
            else:
                s = float(rng.uniform(0, duration - 1))
                seg = [s, float(min(duration, s + rng.uniform(1, 30)))]
                label, score = classes[int(rng.integers(n_classes))], float(rng.uniform(0, 0.5))
            dets.append({"label": label, "score": round(score, 4), "segment": [round(seg[0], 2), round(seg[1], 2)]})
        results[vid] = dets
    return {"version": "bench", "database": database}, {"version": "bench", "results": results, "external_data": {}}


def _lists(annotations, results):
    gt = [(v.id, int(lab), float(s), float(e)) for v in annotations.in_subset("validation")
          for lab, (s, e) in zip(v.labels, v.segments)]
    index = {c: i for i, c in enumerate(annotations.classes)}
    det = [(vid, index[d["label"]], float(d["segment"][0]), float(d["segment"][1]), float(d["score"]))
           for vid, ds in results["results"].items() for d in ds]
    return gt, det


def _best_of(n: int, fn) -> float:
    """Least CPU seconds of n runs: this process's, plus its finished children's (the commands).

    CPU time rather than wall time, so that other work on a shared machine does not blur the ratios.
    """
    times = []
    for _ in range(n):
        t = time.process_time() + _children_cpu()
        fn()
        times.append(time.process_time() + _children_cpu() - t)
    return min(times)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--detections", type=int, default=200_000)
    ap.add_argument("--videos", type=int, default=5_000)
    ap.add_argument("--classes", type=int, default=200)
    ap.add_argument("--thumos-videos", type=int, default=100, help="size of the (slower) thumos14 reference run")
    args = ap.parse_args()
    print("times: least CPU seconds of 3 runs (the reference: 1 run)")
    with tempfile.TemporaryDirectory() as tmp:
        gt_path, pred_path = Path(tmp) / "gt.json", Path(tmp) / "pred.json"
        gt_json, pred_json = make_case(args.detections, args.videos, args.classes)
        gt_path.write_text(json.dumps(gt_json))
        pred_path.write_text(json.dumps(pred_json))
        pred_json = json.loads(pred_path.read_text())  # as `dcltal eval` sees it
        classes_path = Path(tmp) / "classes.txt"
        classes_path.write_text("".join(f"class_{c:03d}\n" for c in range(args.classes)))
        annotations = load_annotations(gt_path, classes_path, clip=False)
        n_gt = sum(len(v["annotations"]) for v in gt_json["database"].values())
        print(f"input: {args.detections} detections, {args.videos} videos, {args.classes} classes, {n_gt} ground truths; "
              f"files {gt_path.stat().st_size / 1e6:.1f} MB + {pred_path.stat().st_size / 1e6:.1f} MB")

        tiou = np.linspace(0.5, 0.95, 10).tolist()
        fast = _best_of(3, lambda: evaluate_results(annotations, pred_json, "validation", tiou))
        out = evaluate_results(annotations, pred_json, "validation", tiou)
        t = time.process_time()  # the reference, too, starts from the annotations and the results object
        gt, det = _lists(annotations, pred_json)
        ref, order = activitynet_reference(gt, det, tiou)
        slow = time.process_time() - t
        ref_map = np.stack([ref[c] for c in order], axis=1).mean(axis=1).tolist()
        assert out["mAP"] == ref_map, "activitynet: numbers differ from the reference"
        print(f"activitynet: evaluation {fast:.3f} s, reference {slow:.1f} s, {slow / fast:.0f}x faster; "
              f"identical numbers (average mAP {100 * out['average_mAP']:.2f}%)")

        small_gt, small_pred = make_case(args.detections * args.thumos_videos // args.videos, args.thumos_videos,
                                         args.classes, seed=1)
        (Path(tmp) / "small.json").write_text(json.dumps(small_gt))
        small_ann = load_annotations(Path(tmp) / "small.json", classes_path, clip=False)
        th_tiou = [0.3, 0.4, 0.5, 0.6, 0.7]
        th_fast = _best_of(3, lambda: evaluate_results(small_ann, small_pred, "validation", th_tiou, "thumos14"))
        th_out = evaluate_results(small_ann, small_pred, "validation", th_tiou, "thumos14")
        t = time.process_time()
        sgt, sdet = _lists(small_ann, small_pred)
        th_ref = thumos14_reference(sgt, sdet, [], th_tiou)
        th_slow = time.process_time() - t
        assert th_out["per_class_ap"] == {small_ann.classes[c]: ap for c, ap in th_ref.items()}, "thumos14 differs"
        th_full = _best_of(3, lambda: evaluate_results(annotations, pred_json, "validation", th_tiou, "thumos14"))
        print(f"thumos14 ({len(sdet)} detections, {args.thumos_videos} videos): evaluation {th_fast:.3f} s, "
              f"reference {th_slow:.1f} s, {th_slow / th_fast:.0f}x faster; identical numbers. "
              f"Full input: {th_full:.3f} s")

        def load_only():
            subprocess.run([sys.executable, "-c", f"import json; json.load(open({str(gt_path)!r})); "
                            f"json.load(open({str(pred_path)!r}))"], check=True)

        def command():
            subprocess.run([sys.executable, "-m", "dcltal", "eval", "--gt", str(gt_path), "--pred", str(pred_path),
                            "--subset", "validation"], check=True, capture_output=True)

        base, cmd = _best_of(3, load_only), _best_of(3, command)
        print(f"command (CPU s): `dcltal eval` {cmd:.3f} s, fresh python json.load of both files {base:.3f} s, "
              f"ratio {cmd / base:.2f} (target <= 2)")


if __name__ == "__main__":
    main()
