"""``dcltal propose CONFIG --checkpoint CKPT --out PROPOSALS.json [--subset NAME]``: proposals from
the built-in generator (a checkpoint trained with ``model.kind: proposals``), written in the
ActivityNet proposal JSON (CONTRACT §1-2). The detector's config can then name that file as
``data.proposals``.

Data paths and decoding settings (``proposals.peak_ratio``, ``soft_nms_sigma``, ``max_proposals``,
...) come from CONFIG and ``--set``; the network and its windows from the checkpoint. With
``--set data.annotations=null`` every video of ``data.features`` gets proposals.
"""
from __future__ import annotations

import argparse

from dcltal.commands.common import add_config_arguments, config_from_args
from dcltal.commands.paths import output_file


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--checkpoint", required=True, metavar="CKPT",
                        help="checkpoint written by dcltal train with model.kind: proposals")
    parser.add_argument("--out", required=True, type=output_file, metavar="PROPOSALS.json", help="where to write the proposals")
    parser.add_argument("--subset", metavar="NAME", help="annotation subset to run on (default: data.test_subset)")


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    from dcltal.data.proposals import write_proposal_json  # torch only after the arguments are known good
    from dcltal.engine.proposal_generation import generate_proposals, load_generator, load_proposal_videos
    from dcltal.errors import UserError

    model, settings, streams = load_generator(args.checkpoint, cfg)
    videos = load_proposal_videos(cfg, args.subset, streams)
    width = sum(hi - lo for lo, hi in cfg.data.streams.values())
    if width != model.base[0].in_channels:
        raise UserError(f"data.streams give {width} feature columns, the checkpoint expects "
                        f"{model.base[0].in_channels}; use the streams and features it was trained on")
    proposals = generate_proposals(model, videos, settings, progress=True)
    write_proposal_json(args.out, proposals)
    count = sum(len(p) for p in proposals.values())
    print(f"wrote {count} proposals in {len(proposals)} videos to {args.out}")
    return 0
