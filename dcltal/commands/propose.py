"""``dcltal propose CONFIG --checkpoint CKPT --out PROPOSALS.json [--subset NAME]``: proposals from
the built-in generator (a checkpoint trained with ``model.kind: proposals``), written in the
ActivityNet proposal JSON (CONTRACT §1-2). The detector's config can then name that file as
``data.proposals``.

Data paths and decoding settings (``proposals.peak_ratio``, ``soft_nms_sigma``, ``max_proposals``,
...) come from CONFIG and ``--set``; the network and its windows from the checkpoint. With
``--set data.annotations=null`` every video of ``data.features`` gets proposals. Under ``torchrun
--nproc_per_node=N -m dcltal propose ...`` each process proposes for its share of the videos and
rank 0 writes the one file.
"""
from __future__ import annotations

import argparse

from dcltal.commands.common import add_config_arguments, config_from_args, config_inputs
from dcltal.commands.paths import output_file
from dcltal.io import check_output
from dcltal.runlog import add_output_arguments, show_progress


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--checkpoint", required=True, metavar="CKPT",
                        help="checkpoint written by dcltal train with model.kind: proposals, or its dcltal export directory")
    parser.add_argument("--out", required=True, type=output_file, metavar="PROPOSALS.json", help="where to write the proposals")
    parser.add_argument("--subset", metavar="NAME", help="annotation subset to run on (default: data.test_subset)")
    add_output_arguments(parser)


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    check_output(args.out, "--out", {**config_inputs(args, cfg), "--checkpoint": args.checkpoint})
    progress = show_progress(args)
    from dcltal.data.proposals import write_proposal_json  # torch only after the arguments are known good
    from dcltal.engine.distributed import gather_videos, process_group, run_agreed

    with process_group(cfg.train.device) as ctx:  # under torchrun each process proposes for its share of the videos
        proposals = gather_videos(run_agreed(lambda: _propose(args, cfg, ctx, progress), ctx), ctx)
        run_agreed(lambda: write_proposal_json(args.out, proposals) if ctx.is_main else None, ctx)
    if ctx.is_main and not args.quiet:
        count = sum(len(p) for p in proposals.values())
        print(f"wrote {count} proposals in {len(proposals)} videos to {args.out}")
    return 0


def _propose(args: argparse.Namespace, cfg, ctx, progress: bool) -> dict:
    """This process's share of the proposals ``{video: [N, 3]}``."""
    from dcltal.data.videos import load_videos
    from dcltal.engine.distributed import shard_videos
    from dcltal.engine.proposals.decoding import generate_proposals
    from dcltal.engine.proposals.task import load_generator
    from dcltal.errors import UserError

    model, settings, streams = load_generator(args.checkpoint, cfg, ctx.device)
    width = sum(hi - lo for lo, hi in cfg.data.streams.values())
    if width != model.base[0].in_channels:
        raise UserError(f"data.streams give {width} feature columns, the checkpoint expects "
                        f"{model.base[0].in_channels}; use the streams and features it was trained on")
    # every video: the proposal file serves inference, and evaluation leaves data.avoid_videos out
    videos = load_videos(cfg.data, args.subset, proposals=False, avoid=False, shard=lambda ids: shard_videos(ids, ctx))
    return generate_proposals(model, videos, settings, streams, progress=progress and ctx.is_main)
