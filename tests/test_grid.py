import numpy as np

from dcltal.data.grid import TimeGrid

grid = TimeGrid(fps=30.0, stride=4, window=16)


def test_centre_of_snippet_t():
    # snippet t covers frames [4t, 4t + 16): centre at frame 4t + 8
    assert np.allclose(grid.centres(3), np.array([8, 12, 16]) / 30.0)


def test_seconds_and_indices_round_trip():
    idx = np.array([0.0, 1.5, 37.25, 1000.0])
    assert np.allclose(grid.to_index(grid.to_seconds(idx)), idx)


def test_duration_reaches_the_last_frame_of_the_last_snippet():
    assert grid.duration(10) == (9 * 4 + 16) / 30.0


def test_snippet_ranges_take_the_centres_inside():
    c = grid.centres(100)
    lo, hi = grid.snippet_ranges(np.array([c[10], c[10] + 1e-3]), np.array([c[20], c[20] - 1e-3]), 100)
    assert lo.tolist() == [10, 11] and hi.tolist() == [21, 20]


def test_snippet_ranges_clip_and_never_come_out_empty():
    c = grid.centres(50)
    starts = np.array([-5.0, c[49] + 10, 0.7 * c[3] + 0.3 * c[4] - 1e-4, 0.0])
    ends = np.array([c[2], c[49] + 20, 0.7 * c[3] + 0.3 * c[4] + 1e-4, 1e6])
    lo, hi = grid.snippet_ranges(starts, ends, 50)
    assert lo.tolist() == [0, 49, 3, 0] and hi.tolist() == [3, 50, 4, 50]
    assert (hi > lo).all()
