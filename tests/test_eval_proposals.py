"""Proposal AR@AN as ActivityNet's eval_proposal.py: reference equality, a small worked case, keys."""
import numpy as np
import pytest

from dcltal.data.annotations import Annotations, Video
from dcltal.eval.proposals import evaluate_proposals, recall_curve
from eval_reference import proposal_reference


@pytest.mark.parametrize("seed", range(30))
def test_equal_to_the_reference(seed):
    rng = np.random.default_rng(seed)
    gt, props, gsegs, plist = [], [], [], []
    for v in range(int(rng.integers(1, 6))):
        m = int(rng.integers(1, 4))
        s, l = rng.integers(0, 10, m) / 2, rng.integers(0, 4, m) / 2
        gt += [(v, float(a), float(a + b)) for a, b in zip(s, l)]
        gsegs.append(np.stack([s, s + l], 1))
        n = int(rng.integers(0, 150 if seed % 3 == 0 else 30))
        s, l, sc = rng.integers(0, 10, n) / 2, rng.integers(0, 4, n) / 2, rng.integers(0, 4, n) / 3
        props += [(v, float(a), float(a + b), float(c)) for a, b, c in zip(s, l, sc)]
        plist.append(np.stack([s, s + l, sc], 1) if n else None)
    if not props:
        return
    recall, _, an = proposal_reference(gt, props)
    mine, mine_an = recall_curve(gsegs, plist)
    assert np.array_equal(recall, mine) and np.array_equal(an, mine_an)


def test_worked_case():
    # 2 videos, one GT each, 2 proposals each (best first: a hit, then a miss): ratio = 100 * 2 / 4 = 50,
    # each video keeps both; pcn_k = k/100 * 50; a video uses int(2 * pcn_k) proposals, so from
    # k = 1 (int(1.0) = 1) it uses the best one: recall 1 at every AN.
    gt = [np.array([[0.0, 10.0]]), np.array([[5.0, 6.0]])]
    props = [np.array([[0.0, 10.0, 0.9], [50, 60, 0.1]]), np.array([[5.0, 6.0, 0.9], [0, 1, 0.2]])]
    recall, an = recall_curve(gt, props)
    assert np.all(recall == 1.0)
    assert an == pytest.approx(np.arange(1, 101))


def test_keys_and_perfect_proposals():
    videos = {f"v{i}": Video(f"v{i}", "S", 100.0, None, np.array([[i, i + 5.0]]), np.array([0])) for i in range(5)}
    ann = Annotations(videos, ["a"])
    props = {vid: np.array([[v.segments[0, 0], v.segments[0, 1], 1.0], [90, 95, 0.5]]) for vid, v in videos.items()}
    out = evaluate_proposals(ann, props, "S")
    assert list(out) == ["AR@1", "AR@5", "AR@10", "AR@100", "AUC", "recall@0.5", "recall@0.7"]
    assert out["AR@100"] == 1.0 and out["recall@0.7"]["100"] == 1.0
    assert 0.0 < out["AUC"] <= 1.0
