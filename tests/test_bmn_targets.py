"""BMN training targets: boundary labels by hand, the confidence map against a slow loop."""
from __future__ import annotations

import numpy as np

from dcltal.data.bmn_targets import boundary_labels, confidence_map_labels


def test_boundary_labels_by_hand():
    # start 4.25 -> region [2.75, 5.75]; location t stands for [t - 0.5, t + 0.5]
    # end 9 -> region [7.5, 10.5]
    start, end = boundary_labels(np.array([[4.25, 9.0]]), temporal_scale=12, boundary_width=3)
    expected_start = np.zeros(12)
    expected_start[[3, 4, 5, 6]] = [0.75, 1.0, 1.0, 0.25]
    expected_end = np.zeros(12)
    expected_end[[8, 9, 10]] = 1.0  # 7 gets [6.5, 7.5] ∩ [7.5, 10.5] = 0; 10 gets [9.5, 10.5] fully
    np.testing.assert_allclose(start, expected_start)
    np.testing.assert_allclose(end, expected_end)


def test_boundary_labels_take_the_best_of_several_instances_and_ignore_outside_ones():
    start, _ = boundary_labels(np.array([[2.0, 5.0], [2.6, 8.0], [-20.0, -10.0]]), 10, boundary_width=1)
    # regions [1.5, 2.5] and [2.1, 3.1]: location 2 is covered 1.0 by the first, location 3 0.6 by the second
    np.testing.assert_allclose(start[[1, 2, 3, 4]], [0.0, 1.0, 0.6, 0.0], atol=1e-12)
    assert boundary_labels(np.zeros((0, 2)), 5)[0].tolist() == [0.0] * 5


def slow_tiou(a, b):
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    return inter / ((a[1] - a[0]) + (b[1] - b[0]) - inter)


def test_confidence_map_matches_slow_loop():
    gt = np.array([[1.5, 4.0], [6.0, 9.5], [11.0, 20.0]])
    T, D = 12, 5
    got = confidence_map_labels(gt, T, D)
    for k in range(D):
        for i in range(T):
            want = max(slow_tiou((i, i + k + 1), g) for g in gt)
            assert abs(got[k, i] - want) < 1e-6, (k, i)
    # a ground truth on the grid: its own entry scores 1
    exact = confidence_map_labels(np.array([[3.0, 7.0]]), T, D)
    assert exact[3, 3] == 1.0 and exact.max() == 1.0 and (exact == 1.0).sum() == 1
    assert not confidence_map_labels(np.zeros((0, 2)), T, D).any()
