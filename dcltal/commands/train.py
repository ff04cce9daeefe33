"""``dcltal train CONFIG --work-dir DIR [--set KEY=VALUE ...] [--resume | --overwrite]`` (CONTRACT §3; docs/training.md).

Writes DIR/checkpoints/last.pt every epoch, DIR/checkpoints/best.pt where validation (mAP on held-out
training videos) improves, DIR/metrics.csv, TensorBoard events in DIR/tensorboard, and the run's
record: DIR/config.yaml (the resolved config) and DIR/train.log (dcltal.runlog). Under
``torchrun --nproc_per_node=N -m dcltal train ...`` it trains with DistributedDataParallel.

A DIR that holds an earlier run (its last.pt) is refused unless ``--resume`` continues it or
``--overwrite`` replaces it; DIR/train.lock (pid and host of rank 0) keeps a second run out while
one trains.
"""
from __future__ import annotations

import argparse
import os
from contextlib import nullcontext
from pathlib import Path

from dcltal.commands.common import add_config_arguments, config_from_args, config_inputs
from dcltal.commands.paths import output_dir
from dcltal.errors import UserError
from dcltal.io import check_output, held_lock
from dcltal.runlog import add_output_arguments, run_record, show_progress

LOCK = "train.lock"
WRITTEN = ("checkpoints/last.pt", "checkpoints/best.pt", "metrics.csv", "config.yaml", "train.log")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--work-dir", required=True, type=output_dir, metavar="DIR", help="folder for checkpoints and metrics")
    again = parser.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help="continue from DIR/checkpoints/last.pt")
    again.add_argument("--overwrite", action="store_true",
                       help="start afresh in a DIR that holds an earlier run, replacing its checkpoints and metrics "
                            "(without it, or --resume, such a DIR is refused)")
    add_output_arguments(parser)


def check_work_dir(args: argparse.Namespace) -> None:
    """A UserError where DIR holds an earlier run and neither --resume nor --overwrite says what to do with it."""
    last = Path(args.work_dir) / "checkpoints" / "last.pt"
    if last.is_file() and not (args.resume or args.overwrite):
        raise UserError(f"--work-dir {args.work_dir} holds an earlier run ({last}); continue it with --resume, "
                        "replace it with --overwrite, or name another --work-dir")


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    work = Path(args.work_dir)
    inputs = config_inputs(args, cfg)
    for out in (work, *(work / name for name in WRITTEN)):
        if not (args.resume and out == work / "config.yaml"):  # a resumed run may read its own record
            check_output(out, "--work-dir", inputs)
    check_work_dir(args)
    progress = show_progress(args)
    from dcltal.engine.trainer import train  # torch only after the arguments are known good

    main = int(os.environ.get("RANK", "0")) == 0  # under torchrun, rank 0 holds the lock, keeps the record and reports
    with held_lock(work / LOCK, f"--work-dir {work}") if main else nullcontext():
        if main:
            check_work_dir(args)  # again, holding the lock: a run that finished meanwhile is seen
        if main and args.overwrite:
            for name in ("checkpoints/last.pt", "checkpoints/best.pt", "metrics.csv"):
                (work / name).unlink(missing_ok=True)
        record = run_record(cfg, work, args.resume, console=not (progress or args.quiet)) if main else nullcontext()
        with record:
            checkpoint = train(cfg, work, resume=args.resume, progress=progress)
    if main and not args.quiet:
        print(f"checkpoint: {checkpoint}")
    return 0
