"""``dcltal demo [--out DIR] [--proposals benchmark|builtin]``: the synthetic benchmark end to end,
with a report (the experiment: engine/detection/demo.py). Prints where the report is and the fused
mAP@0.5."""
from __future__ import annotations

import argparse

from dcltal.commands.paths import output_dir
from dcltal.runlog import add_output_arguments, show_progress

PROPOSAL_CHOICES = ("benchmark", "builtin")  # engine/detection/demo.py's PROPOSALS, without importing torch here
SIZE_CHOICES = ("full", "tiny")  # "tiny": the test suite's (seconds)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="dcltal-demo", type=output_dir, metavar="DIR", help="output folder (default ./dcltal-demo)")
    parser.add_argument("--proposals", choices=PROPOSAL_CHOICES, default="benchmark",
                        help="benchmark: the synthetic benchmark's BSN-like proposals (default); builtin: train the "
                             "built-in proposal generator first and detect on its proposals")
    parser.add_argument("--size", choices=SIZE_CHOICES, default="full", help=argparse.SUPPRESS)
    add_output_arguments(parser, quiet=False)


def run(args: argparse.Namespace) -> int:
    from dcltal.engine.detection.demo import run_demo

    result = run_demo(args.out, args.size, args.proposals, show_progress(args))
    m, (baseline, pipeline), recall = result.fused, result.baselines, result.recall
    i = min(range(len(m["tiou"])), key=lambda k: abs(m["tiou"][k] - 0.5))
    print(f"report: {result.report}")
    print(f"mAP@{m['tiou'][i]:g} on the synthetic test split ({result.label}): {100 * m['mAP'][i]:.2f}% "
          f"(baselines without the detector: {100 * baseline['mAP'][i]:.2f}% and "
          f"{100 * pipeline['mAP'][i]:.2f}%; average {100 * m['average_mAP']:.2f}%; {result.wall_s:.0f} s)")
    print(f"proposals ({args.proposals}) on the test split: AR@100 {100 * recall['AR@100']:.2f}%, "
          f"AUC {100 * recall['AUC']:.2f}%")
    return 0
