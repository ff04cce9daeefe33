"""Fixed stream weights against those the held-out videos choose, on a tag's finished zoo runs.

    python benchmarks/accuracy/stream_weights.py zoo-runs --tag defaults [--settings a,b]

Per setting: the run's last.pt; the weights ``infer.stream_weights: held_out`` would choose (the
same validation as training's: the held-out training videos, video-level scores fused in); the
Test split's fused average mAP with the paper's RGB:Flow 5:6 and with the chosen weights (with and
without video-level scores), and each stream alone for reference. No training: it shows what the held_out default changes on runs that
were trained with fixed weights (docs/benchmarks.md, "Stream weights").
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from run_zoo import REPO, score


def chosen_weights(cfg, checkpoint: Path) -> dict[str, float]:
    from dcltal.data.videos import load_videos, split_videos
    from dcltal.engine.detection.predictor import Predictor
    from dcltal.engine.detection.task import validate_detectors
    from dcltal.engine.detection.video_classifier import stream_probabilities

    predictor = Predictor.from_checkpoint(checkpoint, "cpu")
    videos = load_videos(cfg.data, cfg.data.train_subset, classes=predictor.classes)
    _, held = split_videos(len(videos), cfg.train.val_fraction, cfg.train.seed)
    val = videos.subset(held)
    probs = {v.id: stream_probabilities(predictor.video_classifiers, v.features) for v in val}
    held_out = dataclasses.replace(cfg, infer=dataclasses.replace(cfg.infer, stream_weights="held_out"))
    scores = validate_detectors(predictor.models, val, predictor.coder, held_out, probs)
    return {s: scores[f"weight_{s}"] for s in predictor.models}


def main(argv: list[str] | None = None) -> int:
    from dcltal.config import load_config

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("zoo", type=Path)
    parser.add_argument("--tag", default="defaults")
    parser.add_argument("--settings", help="comma-separated (default: every finished run of the tag)")
    args = parser.parse_args(argv)
    runs = sorted(p.parent for p in (args.zoo / "runs" / args.tag).glob("*/summary.json"))
    if args.settings:
        runs = [r for r in runs if r.name in args.settings.split(",")]
    print("| setting | weights chosen (rgb / flow) | fused, 5:6 | fused, chosen | chosen, no video-level scores | RGB alone | Flow alone |")
    print("|---|---|---|---|---|---|---|")
    for work in runs:
        summary = json.loads((work / "summary.json").read_text())
        ckpt = work / "checkpoints" / "last.pt"
        if (work / "checkpoints" / "last_rescored.pt").is_file():  # the zoo's rows come from it where it exists
            ckpt = work / "checkpoints" / "last_rescored.pt"
        cfg = load_config(REPO / summary["command"]["config"], summary["command"]["set"])
        weights = chosen_weights(cfg, ckpt)
        fixed = load_config(REPO / summary["command"]["config"],
                            summary["command"]["set"] + ["infer.stream_weights={rgb: 5, flow: 6}"])
        paper = score(fixed, ckpt, with_streams=True)
        tuned = score(load_config(REPO / summary["command"]["config"], summary["command"]["set"] +
                                  [f"infer.stream_weights={json.dumps(weights)}"]), ckpt, with_streams=True)
        print(f"| {work.name} | {weights['rgb']:.1f} / {weights['flow']:.1f} | {paper['fused']['avg_mAP']} | "
              f"{tuned['fused']['avg_mAP']} | {tuned['no_video_scores']['avg_mAP']} | {paper['rgb']['avg_mAP']} | "
              f"{paper['flow']['avg_mAP']} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
