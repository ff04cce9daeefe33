"""``dcltal eval``: detection mAP of a results file against ground truth (CONTRACT §3, DESIGN §5).

Imports numpy and dcltal's torch-free modules only: the command's start-up is part of its speed.
"""
from __future__ import annotations

import argparse
import sys

from dcltal.commands.paths import output_file
from dcltal.io import check_output, read_json, write_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gt", required=True, metavar="ANNOTATIONS.json", help="ground truth (either JSON dialect)")
    parser.add_argument("--pred", required=True, metavar="RESULTS.json", help="detections, ActivityNet results JSON")
    parser.add_argument("--subset", required=True, help="subset to evaluate (e.g. Test, validation)")
    parser.add_argument("--tiou", type=float, nargs="+", metavar="T",
                        help="tIoU thresholds (default: activitynet 0.5:0.05:0.95, thumos14 0.3:0.1:0.7)")
    parser.add_argument("--protocol", choices=("activitynet", "thumos14"), default="activitynet",
                        help="activitynet: the official ActivityNet evaluator; thumos14: TH14evalDet_Updated.m")
    parser.add_argument("--json", type=output_file, metavar="OUT.json", help="write {tiou, mAP, average_mAP, per_class_ap}")
    parser.add_argument("--classes", metavar="FILE", help="class names, one a line (for files without label_id)")
    parser.add_argument("--avoid", metavar="FILE",
                        help="leave out these videos (first word a line), e.g. thumos14/ssn/test_avoid_videos.txt")
    parser.add_argument("--export-thumos14", metavar="OUT.txt",
                        help="also write the detections as THUMOS14 submission text (needs --class-ids)")
    parser.add_argument("--class-ids", metavar="FILE",
                        help="UCF101 class ids for --export-thumos14: thumos14_classes.csv or classInd.txt")


def run(args: argparse.Namespace) -> int:
    from dcltal.eval.results import paused_gc

    with paused_gc():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from dcltal.data.annotations import load_annotations
    from dcltal.errors import UserError
    from dcltal.eval import evaluate_results
    from dcltal.eval.submission import read_class_ids, write_submission
    from dcltal.io import read_video_list

    if args.export_thumos14 and not args.class_ids:
        raise UserError("--export-thumos14 needs --class-ids FILE (thumos14_classes.csv or a UCF101 classInd.txt)")
    inputs = {"--gt": args.gt, "--pred": args.pred, "--classes": args.classes, "--avoid": args.avoid,
              "--class-ids": args.class_ids}
    for option, out in (("--json", args.json), ("--export-thumos14", args.export_thumos14)):
        if out is not None:
            check_output(out, option, inputs)
    annotations = load_annotations(args.gt, args.classes, clip=False)  # official evaluators score GT as written
    results = read_json(args.pred, "results file")
    avoid = read_video_list(args.avoid) if args.avoid else set()
    out = evaluate_results(annotations, results, args.subset, args.tiou, args.protocol, avoid, source=str(args.pred))
    subset_ids = {v.id for v in annotations.in_subset(args.subset)}
    outside = [vid for vid in results["results"] if vid not in subset_ids and vid not in avoid]
    if outside:
        print(f"warning: {args.pred}: {len(outside)} videos are not in subset {args.subset!r}; their detections "
              f"count as false positives, as in the official evaluators (e.g. {outside[0]})", file=sys.stderr)
    scored = set(out["per_class_ap"])
    unscored = {d["label"] for vid, ds in results["results"].items() if vid not in avoid for d in ds} - scored
    if unscored:
        print(f"warning: {args.pred}: detections of {len(unscored)} classes without ground truth in subset "
              f"{args.subset!r} are not scored (e.g. {sorted(unscored)[0]!r})", file=sys.stderr)
    n_det = sum(len(d) for vid, d in results["results"].items() if vid not in avoid)
    n_gt = sum(len(v.labels) for v in annotations.in_subset(args.subset) if v.id not in avoid)
    left_out = f", {len(avoid)} videos left out" if avoid else ""
    print(f"protocol {args.protocol}, subset {args.subset}: {len(subset_ids - avoid)} videos, {n_gt} ground truths, "
          f"{len(out['per_class_ap'])} classes, {n_det} detections{left_out}")
    print("tIoU   mAP (%)")
    for t, m in zip(out["tiou"], out["mAP"]):
        print(f"{t:<6.2f} {100 * m:6.2f}")
    print(f"{'avg':<6} {100 * out['average_mAP']:6.2f}")
    if args.json:
        write_json(args.json, out, indent=1)
    if args.export_thumos14:
        n = write_submission(args.export_thumos14, results, read_class_ids(args.class_ids), avoid)
        print(f"wrote {n} detections to {args.export_thumos14}")
    return 0
