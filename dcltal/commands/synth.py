"""``dcltal synth OUT_DIR``: write the synthetic benchmark (CONTRACT §3; model in docs/synthetic.md)."""
from __future__ import annotations

import argparse

from dcltal.commands.paths import output_dir
from dcltal.runlog import add_output_arguments, show_progress


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from dcltal.data.synth import DEFAULTS as D

    parser.add_argument("out_dir", type=output_dir, metavar="OUT_DIR", help="directory to write (new, empty, or an earlier synth output)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; the same arguments give the same bytes (default %(default)s)")
    parser.add_argument("--videos-train", type=int, default=D["videos_train"], help="videos in subset Validation, the train split (default %(default)s)")
    parser.add_argument("--videos-test", type=int, default=D["videos_test"], help="videos in subset Test (default %(default)s)")
    parser.add_argument("--classes", type=int, default=D["classes"], help="action classes, in confusable pairs (default %(default)s)")
    parser.add_argument("--dim", type=int, default=D["dim"], help="feature width of one stream; files are 2*DIM wide (default %(default)s)")
    add_output_arguments(parser, quiet=False)


def run(args: argparse.Namespace) -> int:
    from dcltal.data.synth import write_synthetic

    s = write_synthetic(args.out_dir, seed=args.seed, videos_train=args.videos_train, videos_test=args.videos_test,
                        classes=args.classes, dim=args.dim, progress=show_progress(args))
    videos = ", ".join(f"{k} {v} videos / {s['instances'][k]} instances" for k, v in s["videos"].items())
    print(f"wrote {s['out_dir']}: {videos}; {s['classes']} classes; features [T, {2 * s['dim']}] "
          f"(rgb {s['streams']['rgb']}, flow {s['streams']['flow']}), {s['snippets']} snippets; "
          f"{s['proposals']} proposals; seed {s['seed']}")
    return 0
