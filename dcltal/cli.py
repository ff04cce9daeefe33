"""The ``dcltal`` command: parses, calls the library, prints. Thin by design.

Only the chosen command's module is imported, so a command that needs no torch starts fast.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from dcltal import __version__
from dcltal.errors import UserError, print_error, user_message
from dcltal.runtime import tune_process

COMMANDS = {  # name: (module, one-line help)
    "synth": ("dcltal.commands.synth", "write the synthetic benchmark (annotations, features, proposals)"),
    "train": ("dcltal.commands.train", "train a model (both streams) from a config"),
    "infer": ("dcltal.commands.infer", "detect actions with a trained checkpoint; writes ActivityNet results JSON"),
    "convert": ("dcltal.commands.convert", "convert annotation files to the ActivityNet-style JSON"),
    "eval": ("dcltal.commands.eval", "detection mAP of a results file against ground truth"),
    "eval-proposals": ("dcltal.commands.eval_proposals", "proposal recall: AR@AN and recall at fixed tIoU"),
    "params": ("dcltal.commands.params", "count the parameters of one stream's model (or of the proposal generator)"),
    "demo": ("dcltal.commands.demo", "the synthetic benchmark end to end: synth, train, infer, eval, report"),
    "ablate": ("dcltal.commands.ablate", "train and evaluate the paper's ablation variants"),
    "visualize": ("dcltal.commands.visualize", "plot attention curves (paper Fig. 1 and 3) and detections"),
    "propose": ("dcltal.commands.propose", "generate proposals with the built-in proposal network"),
    "export": ("dcltal.commands.export", "write a checkpoint as a released model: safetensors weights, config, classes"),
}


def _chosen_command(argv: list[str]) -> str | None:
    return next((a for a in argv if not a.startswith("-")), None)


class OneLineParser(argparse.ArgumentParser):
    """argparse with its errors on one line (CONTRACT §3), the usage left to ``--help``."""

    help_command: str | None = None  # the command whose --help to point to (the chosen one, not dcltal's)

    def error(self, message: str):
        raise UserError(f"{message} (see {self.help_command or self.prog} --help)")


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="dcltal",
        description="Temporal action localization with disentangled classification and localization representations.",
    )
    parser.add_argument("--version", action="version", version=f"dcltal {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = _chosen_command(argv)
    if chosen in COMMANDS:  # the top-level parser reports unknown options of the command too
        parser.help_command = f"dcltal {chosen}"
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name != chosen:
            continue
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name != module_name:
                raise
            raise UserError(f"command {name!r} is not available in this version of dcltal") from None
        module.add_arguments(p)
        p.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    tune_process()  # before a command's module imports torch
    try:
        parser = build_parser(argv)
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        return int(args.run(args) or 0)
    except (UserError, OSError) as e:  # OSError: a path the user gave that cannot be read or written
        message = user_message(e)
        if message is None:  # not about a path (a closed pipe, ...): not a user's mistake to name
            raise
        print_error(message)
        return 2
    except KeyboardInterrupt:
        print("dcltal: interrupted", file=sys.stderr)
        return 130
