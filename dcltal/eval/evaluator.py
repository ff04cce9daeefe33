"""Detection mAP over plain arrays, fed video by video (docs/evaluation.md): the numbers of
``dcltal eval`` without a results file, e.g. inside a user's own loop."""
from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np

from dcltal.data.annotations import Annotations, Video
from dcltal.errors import UserError
from dcltal.eval.results import Detections, ground_truth


class Evaluator:
    """``Evaluator(gt, classes, protocol=..., tiou=...)``, then :meth:`update` per video and
    :meth:`compute`. ``gt``: an :class:`Annotations` with ``subset``, or ``{video id: (segments
    [M, 2] seconds, labels [M])}`` with ``classes`` naming the class indices. Labels, here and in
    :meth:`update`, are class indices or names. Detections keep the order of the updates, which the
    protocols' tie rules read as a results file's order; reversed segments are swapped."""

    def __init__(self, gt: Annotations | Mapping[str, tuple[Any, Any]], classes: Iterable[str] | None = None, *,
                 subset: str | None = None, protocol: str = "activitynet", tiou: Iterable[float] | None = None):
        from dcltal.eval import checked_tiou

        self.protocol, self.tiou = protocol, checked_tiou(protocol, tiou)
        if isinstance(gt, Annotations):
            if subset is None:
                raise UserError("Evaluator: name the subset to evaluate (subset=...) with an Annotations")
            annotations = gt
        else:
            if classes is None:
                raise UserError("Evaluator: give classes=[names] for the class indices of gt")
            self.classes = list(classes)
            subset = "evaluated"
            annotations = Annotations({str(vid): Video(str(vid), subset, None, None, _segments(seg, vid),
                                                       self._labels(lab, vid))
                                       for vid, (seg, lab) in gt.items()}, self.classes)
        self.classes = list(annotations.classes)
        self.gt = ground_truth(annotations, subset)
        if not len(self.gt.labels):
            raise UserError("Evaluator: the ground truth holds no instances; nothing to evaluate")
        self._number = {vid: i for i, vid in enumerate(self.gt.video_ids)}
        self._parts: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = []

    def _labels(self, labels, vid) -> np.ndarray:
        arr = np.asarray(labels).reshape(-1)
        if arr.dtype.kind in "iu":
            bad = arr[(arr < 0) | (arr >= len(self.classes))]
            if len(bad):
                raise UserError(f"Evaluator: video {vid!r}: label {int(bad[0])} is not a class index "
                                f"(0..{len(self.classes) - 1})")
            return arr.astype(np.int64)
        index = {name: i for i, name in enumerate(self.classes)}
        unknown = [name for name in arr.tolist() if name not in index]
        if unknown:
            raise UserError(f"Evaluator: video {vid!r}: label {unknown[0]!r} is not one of the classes")
        return np.array([index[name] for name in arr.tolist()], dtype=np.int64)

    def update(self, video_id: str, segments, labels, scores) -> None:
        """One video's detections: ``segments`` [N, 2] seconds, ``labels`` [N], ``scores`` [N]. A video
        without ground truth counts its detections as false positives, as ``dcltal eval`` does."""
        vid = str(video_id)
        seg = _segments(segments, vid)
        lab = self._labels(labels, vid)
        try:
            score = np.asarray(scores, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise UserError(f"Evaluator: video {vid!r}: scores must be [N] numbers") from None
        if not len(seg) == len(lab) == len(score):
            raise UserError(f"Evaluator: video {vid!r}: {len(seg)} segments, {len(lab)} labels and {len(score)} "
                            "scores; give one of each a detection")
        if not np.isfinite(score).all():
            raise UserError(f"Evaluator: video {vid!r}: every score must be a finite number")
        if vid not in self._number:
            self._number[vid] = len(self.gt.video_ids)
            self.gt.video_ids.append(vid)
        self._parts.append((self._number[vid], np.sort(seg, axis=1), lab, score))

    def compute(self) -> dict[str, Any]:
        """``{"tiou", "mAP", "average_mAP", "per_class_ap"}`` as ``dcltal eval --json`` writes it."""
        from dcltal.eval import score

        parts = self._parts or [(0, np.zeros((0, 2)), np.zeros(0, np.int64), np.zeros(0))]
        det = Detections(video=np.repeat([p[0] for p in parts], [len(p[3]) for p in parts]).astype(np.int64),
                         segments=np.concatenate([p[1] for p in parts]),
                         labels=np.concatenate([p[2] for p in parts]),
                         scores=np.concatenate([p[3] for p in parts]))
        return score(self.gt, det, self.classes, self.tiou, self.protocol)


def _segments(segments, vid) -> np.ndarray:
    """[N, 2] float64 finite seconds, or a UserError naming the video."""
    try:
        arr = np.asarray(segments, dtype=np.float64)
    except (TypeError, ValueError):
        arr = None
    if arr is not None and arr.size == 0:
        return arr.reshape(0, 2)
    if arr is None or arr.ndim != 2 or arr.shape[1] != 2 or not np.isfinite(arr).all():
        raise UserError(f"Evaluator: video {vid!r}: segments must be [N, 2] finite seconds")
    return arr
