"""Vectorised building blocks shared by the protocols: pairs by key, and serial greedy matching.

Both official matchers are greedy and sequential: ActivityNet lets each detection, best score
first, claim its most overlapping free ground truth; the THUMOS14 kit lets each ground truth, in
file order, claim its most overlapping free detection. Claims only interact inside one
(video, class) group, so :func:`serial_greedy` runs step k for the k-th proposer of *every* group
at once: the Python loop is over the largest group's size, not over detections.
"""
from __future__ import annotations

import numpy as np


def same_key_pairs(key_a: np.ndarray, key_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All index pairs (i, j) with ``key_a[i] == key_b[j]``: i ascending, then j ascending."""
    order_b = np.argsort(key_b, kind="stable")
    sorted_b = key_b[order_b]
    lo = np.searchsorted(sorted_b, key_a, "left")
    n = np.searchsorted(sorted_b, key_a, "right") - lo  # [A] partners of each a
    i = np.repeat(np.arange(len(key_a)), n)
    first = np.cumsum(n) - n  # where each a's run starts among the pairs
    j = order_b[np.arange(int(n.sum())) + np.repeat(lo - first, n)]
    return i, j


def run_starts(*keys: np.ndarray) -> np.ndarray:
    """[P] bool: True where any of the (sorted) keys changes from the previous element."""
    n = len(keys[0])
    change = np.zeros(n, dtype=bool)
    if n:
        change[0] = True
        for k in keys:
            change[1:] |= k[1:] != k[:-1]
    return change


def serial_greedy(group: np.ndarray, proposer: np.ndarray, target: np.ndarray) -> np.ndarray:
    """[P] bool: the pairs claimed when, in each group, proposers in turn take their first free target.

    The pairs are sorted by (group, proposer turn, preference): ``proposer`` [P] grows with the
    turn inside a group, and each proposer's pairs list its targets best first. ``target`` [P] ids
    are unique across groups. A proposer whose targets are all taken claims nothing.
    """
    claimed = np.zeros(len(group), dtype=bool)
    if not len(group):
        return claimed
    new_proposer = run_starts(group, proposer)
    run = np.cumsum(new_proposer) - 1  # [P] proposer run id
    step = run - np.maximum.accumulate(np.where(run_starts(group), run, 0))  # turn inside the group
    small = np.uint16 if step.max() < 2**16 else np.int64  # small ints: numpy's radix sort
    by_step = np.argsort(step.astype(small), kind="stable")  # keeps (group, preference) order inside a step
    bounds = np.searchsorted(step[by_step], np.arange(int(step.max()) + 2))
    taken = np.zeros(int(target.max()) + 1, dtype=bool)
    for k in range(len(bounds) - 1):
        idx = by_step[bounds[k]:bounds[k + 1]]  # one proposer a group, its targets best first
        free = idx[~taken[target[idx]]]
        first = free[run_starts(run[free])]  # each proposer's best free target
        taken[target[first]] = True
        claimed[first] = True
    return claimed
