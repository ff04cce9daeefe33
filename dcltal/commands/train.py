"""``dcltal train CONFIG --work-dir DIR [--set KEY=VALUE ...] [--resume]`` (CONTRACT §3; docs/training.md).

Writes DIR/checkpoints/last.pt every epoch, DIR/checkpoints/best.pt where validation (mAP on held-out
training videos) improves, DIR/metrics.csv and TensorBoard events in DIR/tensorboard. Under
``torchrun --nproc_per_node=N -m dcltal train ...`` it trains with DistributedDataParallel.
"""
from __future__ import annotations

import argparse
import os

from dcltal.commands.common import add_config_arguments, config_from_args
from dcltal.commands.paths import output_dir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--work-dir", required=True, type=output_dir, metavar="DIR", help="folder for checkpoints and metrics")
    parser.add_argument("--resume", action="store_true", help="continue from DIR/checkpoints/last.pt")


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    from dcltal.engine.trainer import train  # torch only after the arguments are known good

    checkpoint = train(cfg, args.work_dir, resume=args.resume)
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, one line from rank 0
        print(f"checkpoint: {checkpoint}")
    return 0
