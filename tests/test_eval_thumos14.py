"""The thumos14 protocol (TH14evalDet_Updated.m): a hand-computed case, the reference, properties."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from dcltal.data.annotations import Annotations, Video
from dcltal.eval import default_tiou, evaluate_results
from eval_reference import random_case, thumos14_reference


def _case(segments, dets, ambiguous=()):
    v = Video("v", "S", None, None, np.array(segments, float).reshape(-1, 2), np.zeros(len(segments), np.int64),
              np.array(ambiguous, float).reshape(-1, 2))
    res = {"results": {"v": [{"label": "a", "score": s, "segment": seg} for seg, s in dets]}}
    return Annotations({"v": v}, ["a"]), res


def test_hand_computed_case():
    # GT [0,10], [20,30]; Ambiguous [40,50]. GT1 claims A (overlap 1), GT2 claims C (0.6 > 0.5);
    # B is a false positive, D (on the ambiguous part) is dropped, E a false positive.
    # 0.5: by confidence A(TP) B(FP) C(TP) E(FP): AP = (1 + 2/3) / 2 = 5/6.
    # 0.6: C's 0.6 is not strictly above 0.6: A(TP) B C E (FP): AP = 1/2.
    ann, res = _case([[0, 10], [20, 30]],
                     [([0, 10], 0.9), ([1, 10], 0.8), ([20, 26], 0.7), ([41, 45], 0.95), ([60, 70], 0.6)],
                     ambiguous=[[40, 50]])
    out = evaluate_results(ann, res, "S", [0.5, 0.6], protocol="thumos14")
    assert out["per_class_ap"]["a"] == pytest.approx([5 / 6, 0.5])


def test_ground_truth_claims_the_best_overlap_not_the_best_score():
    # GT claims B (overlap 1) although A scores higher: A is a false positive ranked first -> AP 1/2
    ann, res = _case([[0, 10]], [([1, 10], 0.9), ([0, 10], 0.5)])
    assert evaluate_results(ann, res, "S", [0.5], protocol="thumos14")["per_class_ap"]["a"] == [0.5]


def test_reversed_intervals_are_swapped():
    ann, res = _case([[0, 10]], [([10, 0], 0.9)])
    assert evaluate_results(ann, res, "S", [0.5], protocol="thumos14")["mAP"] == [1.0]


def test_default_thresholds():
    assert default_tiou("thumos14") == [0.3, 0.4, 0.5, 0.6, 0.7]


@pytest.mark.parametrize("seed", range(40))
def test_equal_to_the_reference(seed):
    ann, res, gt, det, amb = random_case(np.random.default_rng(seed), max_gt=12, max_det=25)
    if not gt:
        return
    tiou = [0.1, 0.3, 0.5, 0.7, 0.95]
    ref = thumos14_reference(gt, det, amb, tiou)
    out = evaluate_results(ann, res, "S", tiou, protocol="thumos14")
    assert list(out["per_class_ap"]) == [f"c{c}" for c in sorted(ref)]
    for c, ap in ref.items():
        assert out["per_class_ap"][f"c{c}"] == ap  # bit for bit


case = st.integers(0, 2**32 - 1).map(lambda s: random_case(np.random.default_rng(s), max_gt=8, max_det=12))


@settings(max_examples=60, deadline=None)
@given(case)
def test_perfect_predictions_score_one(c):
    ann, _, gt, _, _ = c
    if not gt:
        return
    res = {"results": {}}
    for vid, label, s, e in gt:
        if e > s:  # the kit's overlap of a zero-length segment is 0
            res["results"].setdefault(vid, []).append({"label": f"c{label}", "score": 1.0, "segment": [s, e]})
    if any(e == s for _, _, s, e in gt):
        return
    assert evaluate_results(ann, res, "S", [0.5, 0.9], protocol="thumos14")["mAP"] == [1.0, 1.0]


@settings(max_examples=60, deadline=None)
@given(case, st.randoms(use_true_random=False))
def test_order_of_detections_and_monotone_rescoring_do_not_matter(c, random):
    ann, res, gt, _, _ = c
    if not gt:
        return
    dets = [d for ds in res["results"].values() for d in ds]
    for d, s in zip(dets, random.sample(range(len(dets)), len(dets))):
        d["score"] = s / max(len(dets), 1)  # distinct: file order breaks ties in the kit
    shuffled = {"results": {v: random.sample(ds, len(ds)) for v, ds in reversed(res["results"].items())}}
    rescored = {"results": {v: [{**d, "score": np.exp(3 * d["score"])} for d in ds] for v, ds in res["results"].items()}}
    tiou = [0.3, 0.5, 0.7]
    base = evaluate_results(ann, res, "S", tiou, protocol="thumos14")
    assert base == evaluate_results(ann, shuffled, "S", tiou, protocol="thumos14")
    assert base == evaluate_results(ann, rescored, "S", tiou, protocol="thumos14")


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 2**32 - 1), st.data())
def test_a_duplicate_detection_never_raises_ap(seed, data):
    # disjoint ground truth and thresholds >= 0.5: only one ground truth can claim a detection
    rng = np.random.default_rng(seed)
    starts = np.sort(rng.choice(10, size=int(rng.integers(1, 5)), replace=False)) * 4.0
    ann, _ = _case(np.stack([starts, starts + rng.integers(1, 4, len(starts))], 1), [], ambiguous=[[9, 11]])
    _, res, _, _, _ = random_case(rng, videos=1, classes=1, max_det=12, grid=1.0, extra_videos=0)
    res["results"]["v"] = [{**d, "label": "a", "score": float(s)} for d, s in
                           zip(res["results"]["v0"], rng.permutation(len(res["results"]["v0"])))]
    del res["results"]["v0"]
    if not res["results"]["v"]:
        return
    k = data.draw(st.integers(0, len(res["results"]["v"]) - 1))
    dup = {"results": {"v": res["results"]["v"][:k + 1] + [dict(res["results"]["v"][k])] + res["results"]["v"][k + 1:]}}
    tiou = [0.5, 0.75]
    before = evaluate_results(ann, res, "S", tiou, protocol="thumos14")["per_class_ap"]["a"]
    after = evaluate_results(ann, dup, "S", tiou, protocol="thumos14")["per_class_ap"]["a"]
    assert all(a <= b for a, b in zip(after, before))
