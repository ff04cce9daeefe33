"""The synthetic benchmark: formats the loaders read, determinism, THUMOS14-like statistics,
BSN-like proposals, and the designed structure of the generative model (docs/synthetic.md)."""
import json

import numpy as np
import pytest

from dcltal.cli import main
from dcltal.data.annotations import load_annotations
from dcltal.data.features import FeatureStore
from dcltal.data.proposals import load_proposals
from dcltal.data.segments import pairwise_tiou
from dcltal.data.synth import class_names, write_synthetic
from dcltal.data.synth.features import STREAM_WEIGHTS, PatternBank, component_intervals, component_weights
from dcltal.data.synth.layout import GRID, LENGTH_RANGE_S, draw_layout, partner
from dcltal.data.synth.proposals import draw_proposals
from dcltal.errors import RepairLog, UserError

SMALL = dict(seed=3, videos_train=5, videos_test=3, classes=4, dim=16)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "out"
    return out, write_synthetic(out, progress=False, **SMALL)


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_files_are_read_by_the_project_loaders(small, capsys):
    out, summary = small
    ann = load_annotations(out / "annotations.json", out / "classes.txt")
    assert ann.classes == class_names(4) == (out / "classes.txt").read_text().split()
    assert len(ann.in_subset("Validation")) == 5 and len(ann.in_subset("Test")) == 3
    assert summary["videos"] == {"Validation": 5, "Test": 3}
    assert summary["instances"]["Test"] == sum(len(v.segments) for v in ann.in_subset("Test"))
    raw = json.loads((out / "annotations.json").read_text())["database"]
    # label_id (the ActionFormer dialect) agrees with the classes file
    assert all(ann.classes[a["label_id"]] == a["label"] for v in raw.values() for a in v["annotations"])
    store = FeatureStore(out / "features", {"rgb": [0, 16], "flow": [16, 32]})
    assert sorted(store.video_ids()) == sorted(ann.videos)
    log = RepairLog()
    props = load_proposals(out / "proposals", ann.videos, 30.0, repairs=log)
    assert not log.counts  # nothing to repair: inside the videos, ground truth inside too
    snippets = 0
    for vid, video in ann.videos.items():
        feats = store.load(vid)
        T = feats["rgb"].shape[0]
        snippets += T
        assert feats["rgb"].shape == feats["flow"].shape == (T, 16) and feats["rgb"].dtype == np.float32
        assert np.isfinite(feats["rgb"]).all() and (feats["flow"] >= 0).all()
        assert video.duration == pytest.approx(GRID.duration(T), abs=1e-6) and video.fps == 30.0
        assert (video.segments[:, 1] > video.segments[:, 0]).all() and video.segments.max() <= video.duration
        assert props[vid].shape[1] == 3 and 0 <= props[vid][:, :2].min() and props[vid][:, :2].max() <= video.duration
    assert summary["snippets"] == snippets
    assert "warning" not in capsys.readouterr().err  # no ground truth to clip


def test_same_arguments_same_bytes_and_the_seed_matters(small, tmp_path):
    out, _ = small
    write_synthetic(tmp_path / "again", progress=False, **SMALL)
    assert _files(tmp_path / "again") == _files(out)
    write_synthetic(tmp_path / "other", progress=False, **{**SMALL, "seed": 4})
    other = _files(tmp_path / "other")
    assert other.keys() == _files(out).keys()
    assert other["features/video_test_0000001.npy"] != _files(out)["features/video_test_0000001.npy"]


def test_rewriting_a_synth_dir_with_fewer_videos_drops_the_stale_files(tmp_path):
    write_synthetic(tmp_path / "d", progress=False, **SMALL)
    write_synthetic(tmp_path / "d", progress=False, **{**SMALL, "videos_train": 2})
    names = {p.stem for p in (tmp_path / "d" / "features").iterdir()}
    assert names == {p.stem for p in (tmp_path / "d" / "proposals").iterdir()}
    assert names == set(json.loads((tmp_path / "d" / "annotations.json").read_text())["database"])
    assert len(names) == 5


@pytest.fixture(scope="module")
def layouts():
    rng = np.random.default_rng(0)
    return [draw_layout(rng, 8) for _ in range(300)]


def test_instance_statistics_are_thumos_like(layouts):
    counts = np.array([len(l.segments) for l in layouts])
    lengths = np.concatenate([l.segments[:, 1] - l.segments[:, 0] for l in layouts])
    true_lengths = np.concatenate([l.true_segments[:, 1] - l.true_segments[:, 0] for l in layouts])
    durations = np.array([l.duration for l in layouts])
    # THUMOS14: 15.4 instances a video, 3.0 s median length, several classes in some videos
    assert 12 <= counts.mean() <= 18 and counts.min() >= 1
    assert 2.5 <= np.median(lengths) <= 3.5 and 2.5 <= lengths.mean() <= 5
    assert LENGTH_RANGE_S[0] - 1e-9 <= true_lengths.min() and true_lengths.max() <= LENGTH_RANGE_S[1] + 1e-9
    assert 60 <= durations.mean() <= 240  # a video of a few minutes
    assert 0.1 <= np.mean([len(set(l.labels)) > 1 for l in layouts]) <= 0.3
    assert any(np.bincount(l.labels).max() > 1 for l in layouts)  # several instances of one class
    for l in layouts:
        s = l.true_segments
        assert (np.diff(s.ravel()) > 0).all() and s[0, 0] >= 0 and s[-1, 1] <= l.duration  # sorted, disjoint
        assert l.num_snippets >= 1 and l.duration == GRID.duration(l.num_snippets)
        # the annotation disagrees with the features' action only by the boundary noise
        assert np.abs(l.segments - l.true_segments).max() < 0.5 * (s[:, 1] - s[:, 0]).max() + 0.1
        fs = l.false_starts
        if len(fs):
            assert pairwise_tiou(fs, s).max() == 0


def test_proposals_are_bsn_like(layouts):
    rng = np.random.default_rng(1)
    recall, scores, best = [], [], []
    for l in layouts[:60]:
        p = draw_proposals(rng, l.true_segments, l.segments, l.duration, GRID)
        length_frames = (p[:, 1] - p[:, 0]) * GRID.fps
        assert 100 <= len(p) <= 200
        assert length_frames.min() >= 10 - 1e-6 and length_frames.max() <= 300 + 1e-6
        assert p[:, 0].min() >= 0 and p[:, 1].max() <= l.duration
        assert (np.diff(p[:, 2]) <= 0).all()  # sorted by score
        iou = pairwise_tiou(p[:, :2], l.segments)
        recall.append(iou.max(axis=0) >= 0.5)
        best.append(iou.max(axis=1))
        scores.append(p[:, 2])
        self_overlap = pairwise_tiou(p[:, :2], p[:, :2])
        assert (self_overlap[~np.eye(len(p), dtype=bool)] > 0.5).any()  # some overlap each other
    recall, best, scores = np.concatenate(recall), np.concatenate(best), np.concatenate(scores)
    assert recall.mean() >= 0.9
    assert 0.2 <= (best < 0.1).mean() <= 0.6  # background proposals
    rank = lambda x: np.argsort(np.argsort(x))
    assert np.corrcoef(rank(best), rank(scores))[0, 1] > 0.7  # scores track tIoU


def _reference_weights(layout, bank):
    """Slow, obvious: each snippet's window against each active interval, one at a time."""
    intervals, column, amp = component_intervals(layout, bank)
    w = np.zeros((layout.num_snippets, bank.size))
    span = GRID.window / GRID.fps
    for t in range(layout.num_snippets):
        a = t * GRID.stride / GRID.fps
        for (lo, hi), k, g in zip(intervals, column, amp):
            w[t, k] += g * max(0.0, min(a + span, hi) - max(a, lo)) / span
    return w


def test_component_weights_match_the_slow_reference(layouts):
    bank = PatternBank(np.random.default_rng(0), 8, 16)
    layout = min(layouts, key=lambda l: l.num_snippets)
    assert np.allclose(component_weights(layout, bank), _reference_weights(layout, bank))


def test_phases_carry_the_designed_components(layouts):
    bank = PatternBank(np.random.default_rng(0), 8, 16)
    l = layouts[0]
    w = component_weights(l, bank)  # [T, K]
    centre = GRID.centres(l.num_snippets)
    inside = ((centre[:, None] >= l.true_segments[:, 0] - 0.6) & (centre[:, None] <= l.true_segments[:, 1] + 0.6)).any(1)
    background = ~inside
    # scene everywhere, background included; nothing action-specific in the background but false starts
    assert (w[:, bank.scene(l.scene)] > 0).all()
    assert (w[background][:, bank.take_off(np.arange(8))] == 0).all()
    assert (w[background][:, [bank.start, bank.end]] == 0).all()
    for (s, e), c in zip(l.true_segments, l.labels):
        t_start, t_mid = np.argmin(np.abs(centre - s)), np.argmin(np.abs(centre - (s + e) / 2))
        assert w[t_start, bank.start] > 0 and w[t_start, bank.take_off(c)] == 0
        assert w[t_mid, bank.action] > 0
        # the run-up column is the pair's: the partner's instance would light the same one
        assert bank.run_up(c // 2) == bank.run_up(partner(c, 8) // 2)
    # streams: RGB stresses appearance and scene, Flow motion and boundaries
    norm = {s: np.linalg.norm(bank.patterns[s], axis=1) for s in bank.patterns}
    for kind, (rgb, flow) in STREAM_WEIGHTS.items():
        cols = bank.kinds == kind
        assert (norm["rgb"][cols] > norm["flow"][cols]).all() == (rgb > flow)


def test_confusable_pairs_share_run_ups_in_the_features(tmp_path):
    """Class means of the written features, each video's background mean taken off (that removes
    its scene and style): partners' run-ups lie much closer than their take-offs, in both streams."""
    out = tmp_path / "s"
    write_synthetic(out, seed=0, videos_train=24, videos_test=0, classes=2, dim=16, progress=False)
    ann = load_annotations(out / "annotations.json")
    sums = {(c, part): [] for c in range(2) for part in ("run_up", "take_off")}
    for vid, video in ann.videos.items():
        x = np.load(out / "features" / f"{vid}.npy")  # [T, 32]
        centre = GRID.centres(len(x))
        near = (centre[:, None] > video.segments[:, 0] - 1) & (centre[:, None] < video.segments[:, 1] + 1)
        x = x - x[~near.any(axis=1)].mean(axis=0)
        for (s, e), c in zip(video.segments, video.labels):
            for part, (a, b) in (("run_up", (0.0, 0.3)), ("take_off", (0.55, 0.7))):
                m = (centre >= s + a * (e - s)) & (centre <= s + b * (e - s))
                sums[c, part].append(x[m])
    mean = {k: np.concatenate(v).mean(axis=0) for k, v in sums.items()}
    for cols in (slice(0, 16), slice(16, 32)):  # rgb, flow
        run_gap = np.linalg.norm(mean[0, "run_up"][cols] - mean[1, "run_up"][cols])
        take_off_gap = np.linalg.norm(mean[0, "take_off"][cols] - mean[1, "take_off"][cols])
        assert run_gap < 0.5 * take_off_gap


@pytest.mark.parametrize("kwargs, message", [
    (dict(videos_train=-1), "--videos-train"),
    (dict(videos_test=-2), "--videos-test"),
    (dict(dim=3), "--dim"),
    (dict(classes=1), "--classes"),
    (dict(seed=-1), "--seed"),
    (dict(videos_train=0, videos_test=0), "at least one video"),
])
def test_bad_arguments_are_user_errors(tmp_path, kwargs, message):
    with pytest.raises(UserError, match=message):
        write_synthetic(tmp_path / "x", progress=False, **{**SMALL, **kwargs})
    assert not (tmp_path / "x").exists()


def test_out_dir_that_is_a_file_or_holds_other_files(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    assert main(["synth", str(f), "--videos-train", "1", "--videos-test", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert "is a file" in err and len(err.splitlines()) == 1
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="holds other files"):
        write_synthetic(tmp_path / "busy", progress=False, **SMALL)
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"


def test_command_line(tmp_path, capsys):
    rc = main(["synth", str(tmp_path / "cli"), "--seed", "3", "--videos-train", "5", "--videos-test", "3",
               "--classes", "4", "--dim", "16"])
    assert rc == 0
    assert "Validation 5 videos" in capsys.readouterr().out
    write_synthetic(tmp_path / "api", progress=False, **SMALL)
    assert _files(tmp_path / "cli") == _files(tmp_path / "api")
    assert main(["synth", str(tmp_path / "neg"), "--videos-test", "-1"]) == 2


def test_linear_probes_find_the_data_learnable_but_not_solved(tmp_path):
    """docs/synthetic.md's probes on a small set: far above chance (1/4), not perfect."""
    from dcltal.eval.synth_probe import probe

    write_synthetic(tmp_path / "p", seed=0, videos_train=16, videos_test=8, classes=4, dim=16, progress=False)
    report = probe(tmp_path / "p")
    assert 0.4 < report["accuracy instance both"] < 1.0
    # the run-up names the pair far better than the class within it
    assert report["pair accuracy run-up flow"] > report["accuracy run-up flow"] + 0.1
    assert 0.15 < report["ridge detector mAP@0.5 both"] < 0.95
    assert report["statistics"]["proposal recall at tIoU 0.5, 0.7, 0.9"][0] >= 0.9


def test_slow_noise_is_a_running_mean_with_unit_variance():
    from dcltal.data.synth.features import DRIFT_SNIPPETS, _moving_average

    x = np.random.default_rng(0).standard_normal((4000 + DRIFT_SNIPPETS - 1, 3))
    out = _moving_average(x)
    slow = np.array([x[t:t + DRIFT_SNIPPETS].sum(axis=0) / np.sqrt(DRIFT_SNIPPETS) for t in range(len(out))])
    assert out.shape == (4000, 3) and np.allclose(out, slow)
    assert abs(out.std() - 1) < 0.05
    # neighbours share most of their terms: strongly correlated, far ones not
    assert np.corrcoef(out[:-1, 0], out[1:, 0])[0, 1] > 0.8
    assert abs(np.corrcoef(out[:-DRIFT_SNIPPETS, 0], out[DRIFT_SNIPPETS:, 0])[0, 1]) < 0.1
