"""The suite's cases, registered by :func:`case` in the modules that define them."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

GROUPS = ("bad data", "bad use", "faults", "security")


@dataclass
class Case:
    name: str
    group: str
    quick: bool  # also in ``--quick``
    run: Callable  # (Workspace) -> Outcome


CASES: list[Case] = []


def case(group: str, quick: bool = False):
    assert group in GROUPS
    def register(fn):
        CASES.append(Case(fn.__name__, group, quick, fn))
        return fn
    return register
