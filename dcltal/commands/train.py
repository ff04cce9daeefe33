"""``dcltal train CONFIG --work-dir DIR [--set KEY=VALUE ...] [--resume]`` (CONTRACT §3; docs/training.md).

Writes DIR/checkpoints/last.pt every epoch, DIR/checkpoints/best.pt where validation (mAP on held-out
training videos) improves, DIR/metrics.csv, TensorBoard events in DIR/tensorboard, and the run's
record: DIR/config.yaml (the resolved config) and DIR/train.log (dcltal.runlog). Under
``torchrun --nproc_per_node=N -m dcltal train ...`` it trains with DistributedDataParallel.
"""
from __future__ import annotations

import argparse
import os
from contextlib import nullcontext

from dcltal.commands.common import add_config_arguments, config_from_args
from dcltal.commands.paths import output_dir
from dcltal.runlog import add_output_arguments, run_record, show_progress


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--work-dir", required=True, type=output_dir, metavar="DIR", help="folder for checkpoints and metrics")
    parser.add_argument("--resume", action="store_true", help="continue from DIR/checkpoints/last.pt")
    add_output_arguments(parser)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    progress = show_progress(args)
    from dcltal.engine.trainer import train  # torch only after the arguments are known good

    main = int(os.environ.get("RANK", "0")) == 0  # under torchrun, rank 0 keeps the record and reports
    record = run_record(cfg, args.work_dir, args.resume, console=not (progress or args.quiet)) if main else nullcontext()
    with record:
        checkpoint = train(cfg, args.work_dir, resume=args.resume, progress=progress)
    if main and not args.quiet:
        print(f"checkpoint: {checkpoint}")
    return 0
