"""Arguments shared by the commands that read a config."""
from __future__ import annotations

import argparse

from dcltal.config import Config, load_config


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", metavar="CONFIG", help="YAML config (see configs/)")
    parser.add_argument(
        "--set", dest="overrides", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
        help="override config keys, dotted, with YAML values: --set train.epochs=3 data.streams.rgb=[0,256]",
    )


def positive_int(text: str) -> int:
    """argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not at least 1")
    return value


def config_inputs(args: argparse.Namespace, cfg: Config) -> dict:
    """What a command that reads CONFIG reads, by the name a user knows it by (for ``check_output``)."""
    d, scores = cfg.data, cfg.infer.video_scores
    return {"CONFIG": args.config, "data.annotations": d.annotations, "data.features": d.features,
            "data.proposals": d.proposals, "data.classes": d.classes, "data.avoid_videos": d.avoid_videos,
            "infer.video_scores": None if scores == "builtin" else scores,
            "infer.video_score_classes": cfg.infer.video_score_classes}


def config_from_args(args: argparse.Namespace) -> Config:
    """The config of CONFIG with its ``--set`` overrides; sets torch's CPU threads (``train.threads``)."""
    cfg = load_config(args.config, args.overrides)
    if cfg.train.threads:  # torch only where asked: the commands without a model start without it
        from dcltal.engine.device import set_cpu_threads

        set_cpu_threads(cfg.train.threads)
    return cfg
