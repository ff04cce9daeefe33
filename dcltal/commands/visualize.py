"""``dcltal visualize CONFIG --checkpoint CKPT --video ID --out DIR``: the paper's Fig. 1/3-style
attention curves (per stream, for the video's longest ground truths) and its detections-vs-ground-truth
timeline, as PNGs. Data paths come from CONFIG, the model from the checkpoint."""
from __future__ import annotations

import argparse

from dcltal.commands.common import add_config_arguments, config_from_args, config_inputs, positive_int
from dcltal.commands.paths import output_dir
from dcltal.errors import UserError
from dcltal.io import check_output


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--checkpoint", required=True, metavar="CKPT",
                        help="checkpoint written by dcltal train, or a directory written by dcltal export")
    parser.add_argument("--video", required=True, metavar="ID", help="video id in data.annotations")
    parser.add_argument("--out", required=True, type=output_dir, metavar="DIR", help="folder for the PNGs")
    parser.add_argument("--instances", type=positive_int, default=2, metavar="K",
                        help="attention curves for the K longest ground truths (default 2)")


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    check_output(args.out, "--out", {**config_inputs(args, cfg), "--checkpoint": args.checkpoint})
    if cfg.data.annotations is None or cfg.data.features is None:
        raise UserError("dcltal visualize needs data.annotations and data.features in the config (ground truth to plot)")
    from dcltal.data.annotations import load_annotations
    from dcltal.data.videos import load_videos
    from dcltal.engine.detection.predictor import Predictor
    from dcltal.viz.video import video_figures

    predictor = Predictor.from_checkpoint(args.checkpoint, cfg.train.device)
    predictor.check_streams(cfg.data.streams)
    annotations = load_annotations(cfg.data.annotations, cfg.data.classes)
    video = annotations.videos.get(args.video)
    if video is None:
        raise UserError(f"video {args.video!r} is not in {cfg.data.annotations} (e.g. {next(iter(annotations.videos), '')!r})")
    record = next(v for v in load_videos(cfg.data, video.subset, avoid=False, classes=predictor.classes) if v.id == video.id)
    detections = predictor.detect([record], cfg)["results"][video.id]
    names = [annotations.classes[c] for c in video.labels]
    figures = video_figures(predictor.models, video.id, record.grid, record.features, video.segments, names,
                            detections, record.duration, args.out, instances=args.instances)
    for _, name in figures:
        print(f"{args.out}/{name}")
    return 0
