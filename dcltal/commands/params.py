"""``dcltal params CONFIG [--set ...] [--json]``: parameter counts of one stream's detector (CONTRACT §3),
or, with ``model.kind: proposals``, of the built-in proposal generator.

D is the width of the first stream in ``data.streams``, C is ``model.num_classes``; the detector is
built on the ``meta`` device, so nothing is allocated. The generator reads every stream side by side.
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
    if cfg.model.kind == "proposals":
        return _generator_counts(cfg, args.json)
    stream, (first, end) = next(iter(cfg.data.streams.items()))
    dim = end - first
    with torch.device("meta"):
        counts = Detector.from_config(cfg.model, dim, cfg.model.num_classes).parameter_counts()
    return _report(counts, f"one stream's detector ({stream}: D = {dim}), C = {cfg.model.num_classes}, variant "
                           f"{cfg.model.variant}, D_h = {cfg.model.hidden_dim}, regression {cfg.model.regression}",
                   args.json, 14)


def _generator_counts(cfg, as_json: bool) -> int:
    from dcltal.model.bmn import BMN

    width = sum(hi - lo for lo, hi in cfg.data.streams.values())
    model = BMN.from_config(cfg.proposals, width)
    parts = {"base": [model.base], "temporal_evaluation": [model.start_head, model.end_head],
             "proposal_evaluation": [model.proposal_1d, model.sample_projection, model.proposal_2d]}
    counts = {name: sum(p.numel() for m in mods for p in m.parameters()) for name, mods in parts.items()}
    counts["proposal_evaluation"] += model.sample_bias.numel()
    counts = {"total": sum(p.numel() for p in model.parameters()), **counts}
    return _report(counts, f"the built-in proposal generator (BMN-style), input {width} columns (all streams), "
                           f"T = {cfg.proposals.temporal_scale}, D = {cfg.proposals.max_duration}", as_json, 20)


def _report(counts: dict[str, int], header: str, as_json: bool, name_width: int) -> int:
    """Print ``counts`` as JSON, or under ``header`` a line a part."""
    if as_json:
        print(json.dumps(counts))
        return 0
    print(header)
    for name, n in counts.items():
        print(f"  {name:<{name_width}} {n:>12,}  ({n / 1e6:.2f}M)")
    return 0
