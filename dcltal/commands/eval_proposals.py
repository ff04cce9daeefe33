"""``dcltal eval-proposals``: AR@AN, AUC and recall at tIoU 0.5 / 0.7 (ActivityNet's proposal protocol)."""
from __future__ import annotations

import argparse

from dcltal.commands.paths import output_file


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gt", required=True, metavar="ANNOTATIONS.json", help="ground truth (either JSON dialect)")
    parser.add_argument("--proposals", required=True, metavar="PROPOSALS",
                        help="BSN/BMN CSV directory, ActivityNet proposal JSON, or SSN/P-GCN proposal list")
    parser.add_argument("--subset", required=True, help="subset to evaluate (e.g. Test, validation)")
    parser.add_argument("--json", type=output_file, metavar="OUT.json", help='write {"AR@1", "AR@5", "AR@10", "AR@100", "AUC", ...}')
    parser.add_argument("--fps", type=float, default=30.0,
                        help="frame rate for frame-unit proposal lists where a video has no fps (default 30)")


def run(args: argparse.Namespace) -> int:
    from dcltal.eval.results import paused_gc

    with paused_gc():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from dcltal.data.annotations import load_annotations
    from dcltal.data.proposals import load_proposals
    from dcltal.eval.proposals import evaluate_proposals
    from dcltal.io import check_output, write_json

    if args.json is not None:
        check_output(args.json, "--json", {"--gt": args.gt, "--proposals": args.proposals})
    annotations = load_annotations(args.gt, clip=False)  # official evaluators score GT as written
    videos = {v.id: v for v in annotations.in_subset(args.subset) if len(v.labels)}
    proposals = load_proposals(args.proposals, videos, args.fps)
    out = evaluate_proposals(annotations, proposals, args.subset)
    print(f"subset {args.subset}: {len(videos)} videos with ground truth, "
          f"{sum(len(p) for p in proposals.values())} proposals")
    print("  ".join(f"{k} {100 * out[k]:.2f}" for k in ("AR@1", "AR@5", "AR@10", "AR@100", "AUC")))
    for key in ("recall@0.5", "recall@0.7"):
        print(f"{key}: " + "  ".join(f"AN={an} {100 * r:.2f}" for an, r in out[key].items()))
    if args.json:
        write_json(args.json, out, indent=1)
    return 0
