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


def config_from_args(args: argparse.Namespace) -> Config:
    """The config of CONFIG with its ``--set`` overrides; sets torch's CPU threads (``train.threads``)."""
    cfg = load_config(args.config, args.overrides)
    if cfg.train.threads:  # torch only where asked: the commands without a model start without it
        from dcltal.engine.device import set_cpu_threads

        set_cpu_threads(cfg.train.threads)
    return cfg
