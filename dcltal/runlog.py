"""What a run leaves and shows (docs/training.md, "Run records"): WORK_DIR/config.yaml and
WORK_DIR/train.log from ``dcltal train``, ``--quiet``, and when progress bars are drawn.

Messages go through Python's logging, logger ``dcltal``: :func:`run_record` attaches the log file
(and, where no progress bar shows the run, stderr) for the length of a run.
"""
from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from dcltal.errors import UserError, user_message

log = logging.getLogger("dcltal")
PROGRESS_ENV = "DCLTAL_PROGRESS"


def add_output_arguments(parser: argparse.ArgumentParser, quiet: bool = True) -> None:
    """``--progress``, and ``--quiet`` where ``quiet`` (commands whose summary is not their point)."""
    group = parser.add_mutually_exclusive_group()
    if quiet:
        group.add_argument("--quiet", action="store_true", help="warnings and errors only: no progress bars, no summary")
    group.add_argument("--progress", action="store_true",
                       help=f"progress bars even where stderr is not a terminal (also {PROGRESS_ENV}=1)")


def show_progress(args: argparse.Namespace) -> bool:
    """Progress bars: never with ``--quiet``; with ``--progress`` or DCLTAL_PROGRESS=1; never with
    DCLTAL_PROGRESS=0; else only where stderr is a terminal (not in SLURM or CI logs)."""
    if getattr(args, "quiet", False):
        return False
    if args.progress:
        return True
    env = os.environ.get(PROGRESS_ENV, "")
    if env not in ("", "0", "1"):
        raise UserError(f"environment variable {PROGRESS_ENV}={env!r}: use 1 (progress bars) or 0 (none)")
    return env == "1" if env else sys.stderr.isatty()


def _versions() -> str:
    import numpy
    import torch

    from dcltal import __version__

    return (f"dcltal {__version__}, torch {torch.__version__}, numpy {numpy.__version__}, "
            f"python {platform.python_version()} ({platform.platform()})")


@contextmanager
def run_record(cfg, work_dir: str | os.PathLike, resume: bool, console: bool) -> Iterator[None]:
    """For a training run (rank 0's): the resolved ``cfg`` to WORK_DIR/config.yaml (atomically; on
    ``--resume`` too) and the ``dcltal`` logger's lines to WORK_DIR/train.log (appended), led by the
    versions, device and threads, ended by the error where the run stops on one; to stderr as well
    where ``console``."""
    import torch
    import yaml

    from dcltal.engine.device import resolve_device
    from dcltal.io import write_text

    work = Path(work_dir)
    write_text(work / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    handlers: list[logging.Handler] = [logging.FileHandler(work / "train.log", encoding="utf-8")]
    handlers[0].setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    if console:
        handlers.append(logging.StreamHandler(sys.stderr))
    level = log.level
    log.setLevel(logging.INFO)
    for h in handlers:
        log.addHandler(h)
    try:
        log.info("dcltal train into %s%s", work, ", resumed from checkpoints/last.pt" if resume else "")
        log.info(_versions())
        world = int(os.environ.get("WORLD_SIZE", "1"))
        log.info("device %s, %d torch threads, %d process%s; resolved config in %s", resolve_device(cfg.train.device),
                 torch.get_num_threads(), world, "es" if world > 1 else "", work / "config.yaml")
        yield
        log.info("finished")
    except BaseException as e:
        log.error("stopped: %s", user_message(e) or f"{type(e).__name__}: {e}")
        raise
    finally:
        for h in handlers:
            log.removeHandler(h)
            h.close()
        log.setLevel(level)
