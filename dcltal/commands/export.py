"""``dcltal export CKPT --out DIR``: a released model, DIR/model.safetensors, config.yaml and classes.txt.

DIR holds what inference needs and nothing of training (no optimiser state, no data paths), in
safetensors rather than a pickle; it is accepted wherever a checkpoint is (infer, propose,
visualize, ``dcltal.load``). Layout: :mod:`dcltal.engine.model_dir`.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from dcltal.commands.paths import output_dir
from dcltal.io import check_output


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", metavar="CKPT", help="checkpoint written by dcltal train (or a directory of dcltal export)")
    parser.add_argument("--out", required=True, type=output_dir, metavar="DIR", help="directory to write the model into")


def run(args: argparse.Namespace) -> int:
    from dcltal.engine.checkpoint import load_checkpoint  # torch only after the arguments are known good
    from dcltal.engine.model_dir import CLASSES, CONFIG, WEIGHTS, write_model_dir

    for out in (args.out, *(Path(args.out) / name for name in (WEIGHTS, CONFIG, CLASSES))):
        check_output(out, "--out", {"the checkpoint": args.checkpoint})
    out = write_model_dir(load_checkpoint(args.checkpoint), args.out)
    print(f"wrote {out / WEIGHTS}, {out / CONFIG} and {out / CLASSES}")
    return 0
