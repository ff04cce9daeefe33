"""User mistakes and repaired input.

A :class:`UserError` is something the user can fix (a missing file, a malformed config): the
command line prints its message as one line and exits with code 2. A :class:`RepairLog` collects
input that was repaired so the run can go on (a proposal reaching past the video, clipped), and
reports each kind once with its count and a first example.
"""
from __future__ import annotations

import errno
import sys
from collections import Counter

# errors of the disk rather than of a path: a write that names no file still gets one line
_DISK_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO}


class UserError(Exception):
    """A mistake in the user's input; the message names the file or key and what to do."""


def user_message(error: BaseException) -> str | None:
    """The one line to print for a user's mistake: a UserError, an OSError on a path the user gave
    (cannot be read or written), or a full disk; None for anything else (a bug, a closed pipe)."""
    if isinstance(error, UserError):
        return str(error)
    if not isinstance(error, OSError):
        return None
    hint = "free some space, or check the disk" if error.errno in _DISK_ERRORS else "check the path"
    if error.filename is not None:
        return f"{error.strerror or error}: {error.filename} ({hint})"
    if error.errno in _DISK_ERRORS:
        return f"{error.strerror or error} while writing ({hint})"
    return None


def print_error(message: str) -> None:
    print(f"dcltal: error: {message}", file=sys.stderr, flush=True)


class RepairLog:
    """Counts repairs by kind; :meth:`report` prints one warning line per kind to stderr."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.examples: dict[str, str] = {}

    def add(self, kind: str, example: str, count: int = 1) -> None:
        if count <= 0:
            return
        self.counts[kind] += count
        self.examples.setdefault(kind, example)

    def merge(self, other: "RepairLog") -> None:
        """Add ``other``'s counts (another process's share of the videos)."""
        for kind, n in other.counts.items():
            self.add(kind, other.examples[kind], n)

    def report(self, source: str = "") -> dict[str, int]:
        where = f"{source}: " if source else ""
        for kind, n in self.counts.items():
            print(f"warning: {where}{kind}: {n} (e.g. {self.examples[kind]})", file=sys.stderr)
        return dict(self.counts)
