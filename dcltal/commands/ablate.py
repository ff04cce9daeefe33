"""``dcltal ablate CONFIG --out DIR [--variants ...] [--seeds N] [--set KEY=VALUE ...]`` (CONTRACT §3).

Trains every requested model variant for both streams and N seeds into DIR/runs/<variant>/seed<s>/
(a rerun skips finished runs and resumes killed ones), detects on the test split per stream and
fused, and writes the paper's Tables 1-4 as DIR/ablations.md and every number as
DIR/ablations.json (docs/ablations.md).
"""
from __future__ import annotations

import argparse
import shlex

from dcltal.commands.common import add_config_arguments, config_from_args, config_inputs
from dcltal.commands.paths import output_dir
from dcltal.config import VARIANTS
from dcltal.io import check_output
from dcltal.runlog import add_output_arguments, show_progress


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--out", required=True, type=output_dir, metavar="DIR",
                        help="folder for the runs, ablations.md and ablations.json")
    parser.add_argument("--variants", nargs="+", metavar="VARIANT",
                        help=f"model variants to train (default all: {' '.join(VARIANTS)}); "
                             "table rows whose variants are left out are left out")
    parser.add_argument("--seeds", type=int, default=1, metavar="N",
                        help="train each variant N times, train.seed + 0..N-1 (default 1); cells are mean ± std")
    add_output_arguments(parser, quiet=False)


def command_line(args: argparse.Namespace) -> str:
    """The command as a user would type it again (for the report)."""
    parts = ["dcltal", "ablate", args.config, "--out", args.out]
    if args.variants:
        parts += ["--variants", *args.variants]
    parts += ["--seeds", str(args.seeds)]
    if args.overrides:
        parts += ["--set", *args.overrides]
    return shlex.join(parts)


def run(args: argparse.Namespace) -> int:
    from dcltal.errors import UserError

    cfg = config_from_args(args)
    check_output(args.out, "--out", config_inputs(args, cfg))
    if args.seeds < 1:
        raise UserError(f"--seeds {args.seeds}: must be at least 1")
    from dcltal.engine.detection.ablation import check_variants, run_study  # torch only after the arguments are known good

    variants = check_variants(args.variants)
    study = run_study(cfg, args.out, variants, args.seeds, command_line(args), progress=show_progress(args))
    print(f"wrote {args.out}/ablations.md and {args.out}/ablations.json "
          f"({len(variants)} variants x {args.seeds} seeds, {study['wall_s']:.0f} s)")
    return 0
