"""Evaluation: detection mAP (``activitynet`` and ``thumos14`` protocols) and proposal AR@AN.

Numpy only (no torch, no pandas): ``dcltal eval`` starts fast and the package can be used alone.
See docs/evaluation.md for the protocols' rules and the measured speed.
"""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from dcltal.data.annotations import Annotations
from dcltal.errors import UserError
from dcltal.eval.detection import activitynet_ap
from dcltal.eval.evaluator import Evaluator
from dcltal.eval.proposals import evaluate_proposals
from dcltal.eval.results import Detections, GroundTruth, detections, ground_truth, paused_gc
from dcltal.eval.thumos14 import thumos14_ap

PROTOCOLS = {"activitynet": activitynet_ap, "thumos14": thumos14_ap}
__all__ = ["PROTOCOLS", "Evaluator", "default_tiou", "evaluate_proposals", "evaluate_results"]


def default_tiou(protocol: str) -> list[float]:
    """CONTRACT §3: ``activitynet`` 0.5:0.05:0.95 (the official np.linspace values), ``thumos14`` 0.3:0.1:0.7."""
    if protocol == "activitynet":
        return np.linspace(0.5, 0.95, 10).tolist()
    return [0.3, 0.4, 0.5, 0.6, 0.7]


def evaluate_results(annotations: Annotations, results: dict, subset: str, tiou: Iterable[float] | None = None,
                     protocol: str = "activitynet", avoid: Iterable[str] | None = None,
                     source: str = "results") -> dict[str, Any]:
    """Detection mAP of an ActivityNet results object against the subset's ground truth.

    Returns the ``eval --json`` object of CONTRACT §3: ``{"tiou", "mAP", "average_mAP",
    "per_class_ap"}``, fractions in [0, 1]; classes with ground truth in the subset only (the
    mean runs over them). ``avoid`` names videos left out of both sides.
    """
    tiou = checked_tiou(protocol, tiou)
    avoid = set(avoid or ())
    with paused_gc():  # parsing creates many small objects, and none in cycles
        gt = ground_truth(annotations, subset, avoid)
        if not len(gt.labels):
            left_out = " once --avoid videos are left out" if avoid else ""
            raise UserError(f"subset {subset!r} has no ground-truth instances{left_out}; nothing to evaluate "
                            "(check --subset)")
        det = detections(results, gt, annotations.classes, avoid, source)
        return score(gt, det, annotations.classes, tiou, protocol)


def checked_tiou(protocol: str, tiou: Iterable[float] | None) -> list[float]:
    """The thresholds to score at (the protocol's default where None); a UserError for an unknown
    protocol or a threshold outside (0, 1]."""
    if protocol not in PROTOCOLS:
        raise UserError(f"unknown evaluation protocol {protocol!r}; use one of {sorted(PROTOCOLS)}")
    tiou = default_tiou(protocol) if tiou is None else [float(t) for t in tiou]
    if not tiou or not all(0.0 < t <= 1.0 for t in tiou):
        raise UserError(f"tIoU thresholds must be in (0, 1], got {tiou}")
    return tiou


def score(gt: GroundTruth, det: Detections, classes: list[str], tiou: list[float], protocol: str) -> dict[str, Any]:
    """The ``eval --json`` object of the protocol's AP of ``det`` against ``gt``."""
    ap, scored = PROTOCOLS[protocol](gt, det, tiou, len(classes))  # [T, K]
    mean_ap = ap.mean(axis=1)
    return {
        "tiou": tiou,
        "mAP": mean_ap.tolist(),
        "average_mAP": float(mean_ap.mean()),
        "per_class_ap": {classes[c]: ap[:, k].tolist() for k, c in enumerate(scored)},
    }

