"""``dcltal params CONFIG [--set ...] [--json]``: parameter counts of one stream's detector (CONTRACT §3).

D is the width of the first stream in ``data.streams``, C is ``model.num_classes``; the model is
built on the ``meta`` device, so nothing is allocated.
"""
from __future__ import annotations

import argparse
import json

from dcltal.commands.common import add_config_arguments, config_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print {\"total\": n, \"disentangle\": n, ...} as JSON")


def run(args: argparse.Namespace) -> int:
    import torch

    from dcltal.model.detector import Detector

    cfg = config_from_args(args)
    stream, (first, end) = next(iter(cfg.data.streams.items()))
    dim = end - first
    with torch.device("meta"):
        counts = Detector.from_config(cfg.model, dim, cfg.model.num_classes).parameter_counts()
    if args.json:
        print(json.dumps(counts))
        return 0
    print(f"one stream's detector ({stream}: D = {dim}), C = {cfg.model.num_classes}, variant {cfg.model.variant}, "
          f"D_h = {cfg.model.hidden_dim}, regression {cfg.model.regression}")
    for name, n in counts.items():
        print(f"  {name:<14} {n:>12,}  ({n / 1e6:.2f}M)")
    return 0
