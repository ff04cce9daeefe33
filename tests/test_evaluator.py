"""dcltal.eval.Evaluator: per-video updates of plain arrays give the numbers of `dcltal eval` on the
same detections written as a results file (the real THUMOS14 annotations, made-up detections)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dcltal.cli import main
from dcltal.data.annotations import load_annotations
from dcltal.errors import UserError
from dcltal.eval import Evaluator

THUMOS14 = Path("/work/shared/data/thumos14/actionformer/thumos14.json")


def _made_up(annotations, rng):
    """Per Test video: its ground truth jittered (some with the wrong class), plus random segments;
    a few scores tied; and one video that has no ground truth."""
    out = {}
    for v in annotations.in_subset("Test"):
        n = len(v.labels)
        seg = v.segments + rng.normal(0, 0.6, (n, 2))
        labels = np.where(rng.random(n) < 0.2, rng.integers(0, len(annotations.classes), n), v.labels)
        extra = np.sort(rng.uniform(0, v.segments.max(initial=10) + 5, (5, 2)), axis=1)
        seg = np.concatenate([seg, extra])
        labels = np.concatenate([labels, rng.integers(0, len(annotations.classes), 5)])
        scores = np.round(rng.random(len(seg)), 2)  # rounded: ties, which the protocols order by file order
        out[v.id] = (seg, labels, scores)
    out["not_a_test_video"] = (np.array([[1.0, 4.0]]), np.array([0]), np.array([0.99]))
    return out


@pytest.mark.skipif(not THUMOS14.is_file(), reason="needs the shared THUMOS14 annotations")
@pytest.mark.parametrize("protocol, tiou", [("thumos14", None), ("activitynet", None), ("activitynet", [0.3, 0.5])])
def test_same_numbers_as_dcltal_eval(tmp_path, protocol, tiou, capsys):
    annotations = load_annotations(THUMOS14, clip=False)
    dets = _made_up(annotations, np.random.default_rng(0))
    results = {vid: [{"label": annotations.classes[c], "score": float(s), "segment": [float(a), float(b)]}
                     for (a, b), c, s in zip(seg, labels, scores)] for vid, (seg, labels, scores) in dets.items()}
    (tmp_path / "results.json").write_text(json.dumps({"results": results}))
    args = ["eval", "--gt", str(THUMOS14), "--pred", str(tmp_path / "results.json"), "--subset", "Test",
            "--protocol", protocol, "--json", str(tmp_path / "map.json")] + (["--tiou", *map(str, tiou)] if tiou else [])
    assert main(args) == 0
    expected = json.loads((tmp_path / "map.json").read_text())

    ev = Evaluator(annotations, subset="Test", protocol=protocol, tiou=tiou)
    for vid, (seg, labels, scores) in dets.items():
        ev.update(vid, seg, labels, scores)
    assert ev.compute() == expected
    assert 0.05 < expected["average_mAP"] < 0.95  # neither nothing nor everything found: a real comparison

    # the same from plain arrays: {video: (segments, label names)} and the class list
    gt = {v.id: (v.segments, [annotations.classes[c] for c in v.labels]) for v in annotations.in_subset("Test")}
    plain = Evaluator(gt, annotations.classes, protocol=protocol, tiou=tiou)
    for vid, (seg, labels, scores) in dets.items():
        plain.update(vid, seg, labels, scores)
    assert plain.compute() == expected


def test_defaults_and_mistakes():
    gt = {"a": ([[0.0, 10.0], [20.0, 30.0]], [0, 1]), "b": ([[5.0, 8.0]], ["jump"])}
    ev = Evaluator(gt, ["run", "jump"], protocol="thumos14")
    assert ev.tiou == [0.3, 0.4, 0.5, 0.6, 0.7]
    ev.update("a", [[10.0, 0.0], [21.0, 30.0]], ["run", "jump"], [0.9, 0.8])  # reversed: swapped
    ev.update("b", np.zeros((0, 2)), [], [])
    out = ev.compute()
    assert out["per_class_ap"] == {"run": [1.0] * 5, "jump": [0.5] * 5} and out["mAP"] == [0.75] * 5  # b: missed
    ev.update("b", [[5.0, 8.0]], [1], [0.7])
    assert ev.compute()["average_mAP"] == pytest.approx(1.0)
    with pytest.raises(UserError, match="label 'swim' is not one of the classes"):
        ev.update("a", [[0, 1]], ["swim"], [0.5])
    with pytest.raises(UserError, match="label 7 is not a class index"):
        ev.update("a", [[0, 1]], [7], [0.5])
    with pytest.raises(UserError, match="1 segments, 2 labels and 1 scores"):
        ev.update("a", [[0, 1]], [0, 1], [0.5])
    with pytest.raises(UserError, match="segments must be \\[N, 2\\]"):
        ev.update("a", [[0, 1, 2]], [0], [0.5])
    with pytest.raises(UserError, match="unknown evaluation protocol"):
        Evaluator(gt, ["run", "jump"], protocol="voc")
    with pytest.raises(UserError, match="subset=..."):
        Evaluator(load_annotations(THUMOS14) if THUMOS14.is_file() else None)
    with pytest.raises(UserError, match="classes="):
        Evaluator(gt)
