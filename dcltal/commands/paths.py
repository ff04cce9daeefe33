"""argparse types for the paths a command writes: checked when the arguments are parsed, so that a
directory named as a file (or a file in the way of a folder) fails at once with one line, not after
the work."""
from __future__ import annotations

import argparse
from pathlib import Path


def _blocking_file(path: Path) -> Path | None:
    """The first existing non-directory among the folders ``path`` would be written under."""
    return next((p for p in reversed(path.parents) if p.exists() and not p.is_dir()), None)


def output_file(text: str) -> str:
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a directory; name a file to write")
    blocking = _blocking_file(path)
    if blocking is not None:
        raise argparse.ArgumentTypeError(f"cannot write {text}: {blocking} is a file, not a folder")
    return text


def output_dir(text: str) -> str:
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file; name a folder to write into")
    blocking = _blocking_file(path)
    if blocking is not None:
        raise argparse.ArgumentTypeError(f"cannot write into {text}: {blocking} is a file, not a folder")
    return text
