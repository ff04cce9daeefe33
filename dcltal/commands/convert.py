"""``dcltal convert thumos14 ANNOTATION_DIR --out FILE.json [--durations FILE] [--subset NAME]`` (CONTRACT §3)."""
from __future__ import annotations

import argparse
from pathlib import Path

from dcltal.commands.paths import output_file


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", choices=("thumos14",), help="the annotation release to convert")
    parser.add_argument("annotation_dir", metavar="ANNOTATION_DIR", help="folder of <Class>_val.txt / <Class>_test.txt")
    parser.add_argument("--out", required=True, type=output_file, metavar="FILE.json", help="ActivityNet-style annotation JSON to write")
    parser.add_argument("--durations", metavar="FILE",
                        help="video durations, laid out as thumos14/ssn/*_durations.txt; else no 'duration' key")
    parser.add_argument("--subset", metavar="NAME", help="subset name for every video (default: from the file names)")


def run(args: argparse.Namespace) -> int:
    from dcltal.data.thumos14 import read_durations, read_official_dir
    from dcltal.io import check_output, write_json

    read = sorted(Path(args.annotation_dir).glob("*")) if Path(args.annotation_dir).is_dir() else []
    check_output(args.out, "--out", {"a file of ANNOTATION_DIR": {p.name: p for p in read},
                                     "--durations": args.durations})
    durations = read_durations(args.durations) if args.durations else None
    data = read_official_dir(args.annotation_dir, args.subset, durations)
    write_json(args.out, data, indent=1)
    db = data["database"].values()
    print(f"wrote {args.out}: {len(db)} videos, {sum(len(v['annotations']) for v in db)} instances, "
          f"{sum(len(v['ambiguous']) for v in db)} ambiguous segments")
    return 0
