"""The activitynet protocol: a hand-computed case, equality with the slow reference, properties."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from dcltal.data.annotations import Annotations, Video
from dcltal.eval import default_tiou, evaluate_results
from eval_reference import activitynet_reference, random_case


def _annotations(segments, labels, classes=("a",), video="v"):
    v = Video(video, "S", None, None, np.array(segments, float).reshape(-1, 2), np.array(labels, np.int64))
    return Annotations({video: v}, list(classes))


def _results(dets, video="v"):
    return {"results": {video: [{"label": l, "score": s, "segment": seg} for l, seg, s in dets]}}


def test_hand_computed_case():
    # GT [0,10], [20,30]. A [0,10] 0.9 takes GT1; B [1,10] 0.8 finds GT1 taken (FP);
    # C [20,26] 0.7 has tIoU 0.6 with GT2: TP at 0.5, FP at 0.7.
    # 0.5: TP FP TP -> envelope 1 up to recall 0.5, 2/3 up to 1 -> 0.5 + 0.5 * 2/3 = 5/6.
    # 0.7: TP FP FP -> 0.5 * 1 = 0.5.
    ann = _annotations([[0, 10], [20, 30]], [0, 0])
    res = _results([("a", [0, 10], 0.9), ("a", [1, 10], 0.8), ("a", [20, 26], 0.7)])
    out = evaluate_results(ann, res, "S", [0.5, 0.7])
    assert out["per_class_ap"]["a"] == pytest.approx([5 / 6, 0.5])
    assert out["mAP"] == pytest.approx([5 / 6, 0.5])
    assert out["average_mAP"] == pytest.approx((5 / 6 + 0.5) / 2)


def test_best_score_claims_the_ground_truth():
    # the higher-scored A claims GT even though B overlaps it better: AP 1 (THUMOS14 differs)
    ann = _annotations([[0, 10]], [0])
    res = _results([("a", [1, 10], 0.9), ("a", [0, 10], 0.5)])
    assert evaluate_results(ann, res, "S", [0.5])["per_class_ap"]["a"] == [1.0]


def test_zero_length_segments_match_where_they_coincide():
    ann = _annotations([[4.1, 4.1], [7.0, 7.0]], [0, 0])
    res = _results([("a", [4.1, 4.1], 0.9), ("a", [5.0, 5.0], 0.8)])
    out = evaluate_results(ann, res, "S", [0.5, 0.95])
    assert out["per_class_ap"]["a"] == pytest.approx([0.5, 0.5])  # one of two GT found, at precision 1


def test_default_thresholds_are_the_official_linspace():
    assert default_tiou("activitynet") == np.linspace(0.5, 0.95, 10).tolist()
    ann = _annotations([[0, 10]], [0])
    assert evaluate_results(ann, _results([]), "S")["tiou"] == np.linspace(0.5, 0.95, 10).tolist()


def test_classes_without_ground_truth_in_the_subset_are_left_out_of_the_mean():
    ann = _annotations([[0, 10]], [0], classes=("a", "b"))
    res = _results([("a", [0, 10], 0.9), ("b", [0, 10], 0.9)])
    out = evaluate_results(ann, res, "S", [0.5])
    assert list(out["per_class_ap"]) == ["a"] and out["mAP"] == [1.0]


def test_avoided_videos_leave_both_sides():
    ann = Annotations({
        "v": Video("v", "S", None, None, np.array([[0.0, 10]]), np.array([0])),
        "w": Video("w", "S", None, None, np.array([[0.0, 10]]), np.array([0])),
    }, ["a"])
    res = {"results": {"v": [{"label": "a", "score": 1.0, "segment": [0, 10]}],
                       "w": [{"label": "a", "score": 0.9, "segment": [50, 60]}]}}
    assert evaluate_results(ann, res, "S", [0.5])["mAP"][0] < 1.0
    assert evaluate_results(ann, res, "S", [0.5], avoid={"w"})["mAP"] == [1.0]


@pytest.mark.parametrize("seed", range(40))
def test_equal_to_the_reference_with_ties_and_zero_length(seed):
    ann, res, gt, det, _ = random_case(np.random.default_rng(seed), max_gt=12, max_det=25)
    tiou = [0.1, 0.3, 0.5, 0.7, 0.95, 1.0]
    if not gt:
        return
    ref, order = activitynet_reference(gt, det, tiou)
    out = evaluate_results(ann, res, "S", tiou)
    assert list(out["per_class_ap"]) == [f"c{c}" for c in order]
    for c, ap in ref.items():
        assert out["per_class_ap"][f"c{c}"] == list(ap)  # bit for bit
    assert out["mAP"] == np.stack([ref[c] for c in order], axis=1).mean(axis=1).tolist()


case = st.integers(0, 2**32 - 1).map(lambda s: random_case(np.random.default_rng(s), max_gt=8, max_det=12))


@settings(max_examples=60, deadline=None)
@given(case)
def test_perfect_predictions_score_one(c):
    ann, _, gt, _, _ = c
    if not gt:
        return
    res = {"results": {}}
    for vid, label, s, e in gt:
        res["results"].setdefault(vid, []).append({"label": f"c{label}", "score": 1.0, "segment": [s, e]})
    assert evaluate_results(ann, res, "S", [0.5, 0.95, 1.0])["mAP"] == [1.0, 1.0, 1.0]


def _distinct_scores(res, rng):
    dets = [d for ds in res["results"].values() for d in ds]
    for d, s in zip(dets, rng.permutation(len(dets))):
        d["score"] = float(s) / max(len(dets), 1)
    return res


@settings(max_examples=60, deadline=None)
@given(case, st.randoms(use_true_random=False))
def test_input_order_does_not_change_the_numbers(c, random):
    ann, res, gt, _, _ = c
    if not gt:
        return
    res = _distinct_scores(res, np.random.default_rng(random.randint(0, 2**31)))
    shuffled = {"results": {}}
    for vid in random.sample(list(res["results"]), len(res["results"])):
        shuffled["results"][vid] = random.sample(res["results"][vid], len(res["results"][vid]))
    tiou = [0.3, 0.5, 0.7]
    assert evaluate_results(ann, res, "S", tiou) == evaluate_results(ann, shuffled, "S", tiou)


@settings(max_examples=60, deadline=None)
@given(case)
def test_monotone_rescoring_does_not_change_ap(c):
    ann, res, gt, _, _ = c
    if not gt:
        return
    rescored = {"results": {v: [{**d, "score": d["score"] ** 3 * 5 + 1} for d in ds] for v, ds in res["results"].items()}}
    tiou = [0.3, 0.5, 0.7]
    assert evaluate_results(ann, res, "S", tiou) == evaluate_results(ann, rescored, "S", tiou)


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 2**32 - 1), st.data())
def test_a_duplicate_detection_never_raises_ap(seed, data):
    # With disjoint ground truth (within a video and class) and thresholds >= 0.5, a detection can
    # reach one ground truth only, so its duplicate is a false positive. (Where one detection
    # reaches two ground truths above the threshold, a duplicate can rightly find the second.)
    rng = np.random.default_rng(seed)
    vids, names = {}, ["c0", "c1"]
    for v in range(3):
        starts = np.sort(rng.choice(10, size=int(rng.integers(0, 5)), replace=False)) * 4.0
        vids[f"v{v}"] = Video(f"v{v}", "S", None, None, np.stack([starts, starts + rng.integers(1, 4, len(starts))], 1),
                              np.zeros(len(starts), np.int64))
    ann = Annotations(vids, names)
    if not sum(len(v.labels) for v in vids.values()):
        return
    _, res, _, _, _ = random_case(rng, videos=3, classes=1, max_det=10, grid=1.0)
    res = _distinct_scores(res, rng)
    dets = [(v, k) for v, ds in res["results"].items() for k in range(len(ds))]
    if not dets:
        return
    v, k = dets[data.draw(st.integers(0, len(dets) - 1))]
    dup = {"results": {w: list(ds) for w, ds in res["results"].items()}}
    dup["results"][v].insert(k + 1, dict(res["results"][v][k]))
    tiou = [0.5, 0.75, 0.95]
    before, after = evaluate_results(ann, res, "S", tiou), evaluate_results(ann, dup, "S", tiou)
    assert all(a <= b for a, b in zip(after["per_class_ap"]["c0"], before["per_class_ap"]["c0"]))


def test_tied_tiou_rows_follow_the_official_argsort():
    # one detection ties with 20 ground truths (tIoU 1/3 each side), later ones reach single GTs:
    # which GT the first takes depends on numpy's (non-stable) argsort of the row, as officially
    segs = [[10.0 * k, 10.0 * k + 2] for k in range(20)] + [[1.0, 3.0], [-1.0, 1.0]] * 5
    ann = _annotations(segs, [0] * len(segs))
    dets = [("a", [0, 2], 0.9)] + [("a", s, 0.5) for s in segs[::3]] + [("a", [0.5, 2.5], 0.8)]
    gt = [("v", 0, s, e) for s, e in segs]
    det = [("v", 0, s[0], s[1], sc) for _, s, sc in dets]
    tiou = [0.3, 0.5]
    ref, _ = activitynet_reference(gt, det, tiou)
    assert evaluate_results(ann, _results(dets), "S", tiou)["per_class_ap"]["a"] == list(ref[0])
