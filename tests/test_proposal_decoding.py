"""Decoding of the built-in proposal generator, on hand-made cases: boundary peaks, map entries to
scored pairs, windows and locations to seconds, Soft-NMS of window duplicates."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from dcltal.config import ProposalsConfig
from dcltal.data.grid import TimeGrid
from dcltal.engine.proposals.decoding import boundary_candidates, decode_window, generate_proposals, suppress
from dcltal.data.videos import VideoRecord
from dcltal.engine.proposals.task import Window, video_windows, window_features, window_targets
from dcltal.model.bmn import BMNOutput

GRID = TimeGrid(fps=30.0, stride=4, window=16)


def test_boundary_candidates_peaks_and_half_max():
    p = np.array([0.1, 0.5, 0.2, 0.3, 0.25, 0.9, 0.1])
    # peaks at 1, 3, 5; above 0.45 (half the max): 1 and 5
    assert np.flatnonzero(boundary_candidates(p)).tolist() == [1, 3, 5]
    # a plateau is no peak; an end of the sequence is one where it beats its only neighbour
    q = np.array([0.3, 0.1, 0.2, 0.2, 0.1, 0.15])
    assert np.flatnonzero(boundary_candidates(q, peak_ratio=0.9)).tolist() == [0, 5]
    # the half-max rule adds non-peaks
    r = np.array([0.1, 0.2, 0.3])
    assert np.flatnonzero(boundary_candidates(r)).tolist() == [1, 2]
    assert boundary_candidates(np.zeros(0)).shape == (0,)


def test_decode_window_scores_pairs_by_boundaries_and_map():
    T, D = 8, 3
    start = np.full(T, 0.01)
    end = np.full(T, 0.01)
    start[1], start[4] = 0.8, 0.6
    end[3], end[6] = 0.9, 0.5
    cls_map = np.full((D, T), 0.5)
    reg_map = np.full((D, T), 0.5)
    cls_map[1, 1], reg_map[1, 1] = 0.9, 0.4  # proposal [1, 3]: duration 2 -> row 1
    cls_map[1, 4], reg_map[1, 4] = 0.3, 0.3  # proposal [4, 6]
    got = {(int(s), int(e)): sc for s, e, sc in decode_window(start, end, cls_map, reg_map, length=T)}
    # candidate starts {1, 4}, ends {3, 6}; [1, 6] is 5 locations long (> D), [4, 3] goes backwards
    assert set(got) == {(1, 3), (4, 6)}
    assert math.isclose(got[(1, 3)], 0.8 * 0.9 * math.sqrt(0.9 * 0.4))
    assert math.isclose(got[(4, 6)], 0.6 * 0.5 * math.sqrt(0.3 * 0.3))
    # locations past the video's end (zero padding) are never decoded
    short = decode_window(start, end, cls_map, reg_map, length=5)
    assert [(int(s), int(e)) for s, e, _ in short] == [(1, 3)]


def test_sliding_windows_cover_the_video_and_end_on_its_last_snippet():
    cfg = ProposalsConfig(temporal_scale=16, snippets_per_location=2.0, window_overlap=0.5)
    windows = video_windows(100, cfg)
    coords = np.concatenate([w.coords(16)[: w.length] for w in windows])
    assert coords.min() == 0 and coords.max() == 99
    # every snippet lies within half a location step of some window's location
    assert (np.abs(np.arange(100)[:, None] - coords[None]).min(axis=1) <= 1).all()
    assert windows[-1].first + 15 * 2 == 99  # the last window is aligned with the end
    assert [w.first for w in windows[:3]] == [0.0, 16.0, 32.0]  # hop: half a window of 8 locations x 2
    short = video_windows(10, cfg)  # shorter than one window: one, padded
    assert len(short) == 1 and short[0].first == 0 and short[0].length == 5


def test_rescale_window_spans_first_to_last_snippet():
    cfg = ProposalsConfig(mode="rescale", temporal_scale=5)
    (w,) = video_windows(9, cfg)
    np.testing.assert_allclose(w.coords(5), [0, 2, 4, 6, 8])
    features = np.arange(9, dtype=np.float32)[:, None] * np.array([[1.0, -1.0]], dtype=np.float32)
    np.testing.assert_allclose(window_features(features, w, 5)[:, 0], [0, 2, 4, 6, 8])


def test_window_features_interpolate_and_pad_with_zeros():
    features = np.arange(6, dtype=np.float32)[:, None] * 10  # [6, 1]
    w = Window(first=1.5, step=1.5, length=3)
    np.testing.assert_allclose(window_features(features, w, 5)[:, 0], [15, 30, 45, 0, 0])


def test_targets_and_decoding_meet_in_seconds():
    """A ground truth placed on window locations gets map label 1 at its entry, and the decoded
    proposal of that entry maps back to its seconds."""
    cfg = ProposalsConfig(temporal_scale=16, max_duration=6, snippets_per_location=2.0)
    w = Window(first=10.0, step=2.0, length=16)
    seconds = GRID.to_seconds(np.array([10.0 + 2 * 3, 10.0 + 2 * 7]))  # locations 3 and 7
    video = VideoRecord("v", GRID, 30.0, {"rgb": np.zeros((60, 4), np.float32)}, segments=seconds[None])
    start, end, iou_map = window_targets(video, w, cfg)
    assert iou_map[3, 3] == pytest.approx(1.0) and iou_map.max() == pytest.approx(1.0)
    assert start[3] == 1.0 and end[7] == 1.0
    found = decode_window(start * 0.9 + 0.01, end * 0.9 + 0.01, iou_map, iou_map, 16)
    s, e, _ = found[np.argmax(found[:, 2])]
    np.testing.assert_allclose(GRID.to_seconds(w.first + w.step * np.array([s, e])), seconds)


class FixedOutputs(torch.nn.Module):
    """Stands in for BMN: every window gets the same hand-made outputs."""

    def __init__(self, start, end, cls_map, reg_map):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))
        self.fixed = [torch.tensor(a, dtype=torch.float32) for a in (start, end, cls_map, reg_map)]

    def forward(self, x):
        B = x.shape[0]
        return BMNOutput(*(t.expand(B, *t.shape) for t in self.fixed))


def test_generate_proposals_maps_window_locations_to_seconds_and_suppresses_duplicates():
    T, D = 8, 4
    cfg = ProposalsConfig(temporal_scale=T, max_duration=D, snippets_per_location=1.0, window_overlap=0.5,
                          soft_nms_sigma=0.5, max_proposals=10)
    start, end = np.full(T, 0.01), np.full(T, 0.01)
    start[2], end[5] = 0.9, 0.8
    cls_map, reg_map = np.full((D, T), 0.25), np.full((D, T), 0.25)
    cls_map[2, 2] = reg_map[2, 2] = 0.64  # proposal [2, 5]
    model = FixedOutputs(start, end, cls_map, reg_map)
    video = VideoRecord("v", GRID, GRID.duration(12), {"rgb": np.zeros((12, 3), np.float32)})
    windows = video_windows(12, cfg)  # firsts 0 and 4: the proposal appears at snippets [2, 5] and [6, 9]
    assert [w.first for w in windows] == [0.0, 4.0]
    out = generate_proposals(model, [video], cfg)["v"]
    best = 0.9 * 0.8 * 0.64
    top = out[np.isclose(out[:, 2], best)]
    expect = {tuple(np.round(GRID.to_seconds(np.array(c)), 6)) for c in ([2.0, 5.0], [6.0, 9.0])}
    assert {tuple(np.round(r[:2], 6)) for r in top} == expect
    assert (np.diff(out[:, 2]) <= 1e-12).all()  # best first


def test_suppress_decays_a_duplicate_and_clips_to_the_video():
    cfg = ProposalsConfig(soft_nms_sigma=0.5, max_proposals=5)
    cands = np.array([[1.0, 3.0, 0.9], [1.0, 3.0, 0.8], [-1.0, 0.5, 0.3]])
    out = suppress(cands, duration=10.0, cfg=cfg)
    np.testing.assert_allclose(out[0], [1.0, 3.0, 0.9])
    np.testing.assert_allclose(out[1], [0.0, 0.5, 0.3])  # clipped to the video; no overlap, no decay
    np.testing.assert_allclose(out[2], [1.0, 3.0, 0.8 * math.exp(-1 / 0.5)])  # the duplicate, decayed below it
