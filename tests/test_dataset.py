"""VideoDataset.from_config on tiny synthetic data; the train/validation split and the coder fit."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dcltal.config import load_config
from dcltal.data.annotations import load_annotations
from dcltal.data.videos import VideoDataset, split_videos
from dcltal.engine.detection.task import fit_coder, label_videos
from dcltal.errors import UserError
from train_data import DIM, tiny_benchmark, tiny_config


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("dataset")
    synth = tiny_benchmark(root, videos_train=5, videos_test=2)
    return root, synth, tiny_config(root, synth)


def test_records_follow_the_files(setup):
    root, synth, config = setup
    cfg = load_config(config)
    ds = VideoDataset.from_config(cfg, None)
    ann = load_annotations(synth / "annotations.json", synth / "classes.txt")
    assert [v.id for v in ds] == [v.id for v in ann.in_subset("Validation")] and ds.classes == ann.classes
    raw = np.load(synth / "features" / f"{ds[0].id}.npy")
    np.testing.assert_array_equal(ds[0].features["rgb"], raw[:, :DIM])
    np.testing.assert_array_equal(ds[0].features["flow"], raw[:, DIM:])
    for v in ds:
        gt = ann.videos[v.id]
        np.testing.assert_array_equal(v.segments, gt.segments)
        np.testing.assert_array_equal(v.labels, gt.labels)
        assert v.duration == gt.duration and v.grid.fps == gt.fps
        assert v.proposals.shape[1] == 3 and (v.proposals[:, 0] >= 0).all() and (v.proposals[:, 1] <= v.duration).all()
    test = VideoDataset.from_config(cfg, "Test")
    assert len(test) == 2 and not {v.id for v in test} & {v.id for v in ds}


def test_avoid_list_and_float16_cache(setup):
    root, synth, config = setup
    full = VideoDataset.from_config(load_config(config), None)
    avoid = root / "avoid.txt"
    avoid.write_text(f"{full[1].id} some note\n\n{full[3].id}\n")
    cfg = load_config(config, [f"data.avoid_videos={avoid}", "data.feature_cache=true"])
    ds = VideoDataset.from_config(cfg, None)
    assert [v.id for v in ds] == [full[i].id for i in (0, 2, 4)]
    assert ds[0].features["rgb"].dtype == np.float16
    np.testing.assert_allclose(ds[0].features["rgb"], full[0].features["rgb"], rtol=1e-3, atol=1e-3)


def test_missing_inputs_are_user_errors(setup):
    root, synth, config = setup
    with pytest.raises(UserError, match="data.annotations"):
        VideoDataset.from_config(load_config(config, ["data.annotations=null"]), None)
    empty = root / "empty_features"
    empty.mkdir()
    with pytest.raises(UserError, match="no features"):
        VideoDataset.from_config(load_config(config, [f"data.features={empty}"]), None)
    with pytest.raises(UserError, match="subset"):
        VideoDataset.from_config(load_config(config), "training")


def test_split_is_seeded_disjoint_and_complete():
    train, val = split_videos(10, 0.2, seed=3)
    assert len(val) == 2 and sorted(train + val) == list(range(10))
    assert split_videos(10, 0.2, seed=3) == (train, val) and split_videos(10, 0.2, seed=4) != (train, val)
    assert split_videos(1, 0.5, 0) == ([0], []) and split_videos(3, 1.0, 0)[0]  # never all held out


def test_coder_fit_standardises_foreground_codes(setup):
    _, _, config = setup
    cfg = load_config(config)
    labelled = label_videos(VideoDataset.from_config(cfg, None), cfg.train)
    coder = fit_coder("agnostic", labelled)
    fg = [(v.segments[v.kind == 0], v.gt_segments[v.gt[v.kind == 0]]) for v in labelled]
    p = torch.from_numpy(np.concatenate([a for a, _ in fg]))
    g = torch.from_numpy(np.concatenate([b for _, b in fg]))
    codes = coder.encode(p, g)
    np.testing.assert_allclose(codes.mean(0).numpy(), 0, atol=1e-9)
    np.testing.assert_allclose(codes.std(0, unbiased=False).numpy(), 1, atol=1e-6)
