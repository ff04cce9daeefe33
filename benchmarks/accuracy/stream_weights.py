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
import json
import sys
from pathlib import Path

from run_zoo import REPO, chosen_weights, score


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
