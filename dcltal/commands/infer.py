"""``dcltal infer CONFIG --checkpoint CKPT --out RESULTS.json``: detections in the ActivityNet results format.

The data and inference settings come from CONFIG (and ``--set``), the model from the checkpoint.
With ``--set data.annotations=null`` every video in ``data.features`` is processed, its duration
taken from its feature length. ``--cls-from A --loc-from B`` takes classification from checkpoint
A and completeness and regression from checkpoint B (the paper's Table 3). Under ``torchrun
--nproc_per_node=N -m dcltal infer ...`` each process detects in its share of the videos and rank 0
writes the one results file.
"""
from __future__ import annotations

import argparse

from dcltal.commands.common import add_config_arguments, config_from_args, config_inputs
from dcltal.commands.paths import output_file
from dcltal.errors import RepairLog, UserError
from dcltal.io import check_output, write_json
from dcltal.runlog import add_output_arguments, show_progress


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--checkpoint", metavar="CKPT", help="checkpoint written by dcltal train (last.pt or best.pt), or a directory written by dcltal export")
    parser.add_argument("--out", required=True, type=output_file, metavar="RESULTS.json", help="where to write the detections")
    parser.add_argument("--subset", metavar="NAME", help="annotation subset to run on (default: data.test_subset)")
    add_output_arguments(parser)
    parser.add_argument("--cls-from", metavar="CKPT", help="take the classification head's input from this checkpoint")
    parser.add_argument("--loc-from", metavar="CKPT", help="take completeness and regression from this checkpoint")


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    check_output(args.out, "--out", {**config_inputs(args, cfg), "--checkpoint": args.checkpoint,
                                     "--cls-from": args.cls_from, "--loc-from": args.loc_from})
    progress = show_progress(args)
    from dcltal.engine.distributed import gather_objects, gather_videos, process_group, run_agreed

    with process_group(cfg.train.device) as ctx:  # under torchrun each process detects in its share of the videos
        results, repairs = run_agreed(lambda: _detect(args, cfg, ctx, progress), ctx)
        merged, logs = gather_videos(results, ctx), gather_objects(repairs, ctx)
        if ctx.is_main:
            from dcltal.engine.detection.inference import results_json

            for log in logs[1:]:
                repairs.merge(log)
            repairs.report("features")
        run_agreed(lambda: write_json(args.out, results_json(merged)) if ctx.is_main else None, ctx)
    if ctx.is_main and not args.quiet:
        count = sum(len(d) for d in merged.values())
        print(f"wrote {count} detections in {len(merged)} videos to {args.out}")
    return 0


def _detect(args: argparse.Namespace, cfg, ctx, progress: bool) -> tuple[dict, RepairLog]:
    """This process's share of the detections ``{video: [...]}`` and of the features' repairs."""
    from dcltal.engine.distributed import shard_videos
    from dcltal.data.videos import load_videos
    from dcltal.engine.detection.predictor import Predictor

    if args.checkpoint and args.cls_from and args.loc_from:
        raise UserError("--checkpoint is not used when both --cls-from and --loc-from are given; drop one of them")
    cls_from, loc_from = args.cls_from or args.checkpoint, args.loc_from or args.checkpoint
    if cls_from is None or loc_from is None:
        raise UserError("dcltal infer needs --checkpoint CKPT, or both --cls-from CKPT and --loc-from CKPT")
    predictor = Predictor.from_checkpoint(cls_from, ctx.device)
    predictor.check_streams(cfg.data.streams)
    if loc_from != cls_from:
        other = Predictor.from_checkpoint(loc_from, ctx.device)
        other.check_streams(cfg.data.streams)
        predictor = predictor.with_localization_from(other)
    repairs = RepairLog()  # one counted line a kind, once every video is read
    # every video: the results cover them all, and dcltal eval leaves data.avoid_videos out
    videos = load_videos(cfg.data, args.subset, avoid=False, classes=predictor.classes, repairs=repairs,
                         shard=lambda ids: shard_videos(ids, ctx))
    return predictor.detect(videos, cfg, progress=progress and ctx.is_main)["results"], repairs
