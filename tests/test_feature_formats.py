"""Feature files chosen by extension (CONTRACT §1), in both layouts, with prefix, suffix and v_ names."""
from __future__ import annotations

import pickle
import sys

import numpy as np
import pytest
import torch

from dcltal.config import load_config
from dcltal.data.features import FeatureStore
from dcltal.errors import UserError

STREAMS = {"rgb": [0, 3], "flow": [3, 5]}
ARR = np.random.default_rng(0).normal(size=(6, 5)).astype(np.float32)


def _write_csv(path, arr):
    """BMN/BSN's csv_mean_100 layout: a header row of column names, then a row a snippet."""
    header = ",".join(f"f{i}" for i in range(arr.shape[1]))
    path.write_text(header + "\n" + "\n".join(",".join(repr(float(x)) for x in row) for row in arr) + "\n")


WRITERS = {
    "v.npy": lambda p, a: np.save(p, a),
    "v.npz": lambda p, a: np.savez(p, feats=a, other=a[:1]),
    "v.pt": lambda p, a: torch.save(torch.from_numpy(a), p),
    "v.csv": _write_csv,
    "v.pkl": lambda p, a: p.write_bytes(pickle.dumps({"feats": a})),
}


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_each_extension_in_one_directory(tmp_path, name):
    WRITERS[name](tmp_path / name, ARR)
    store = FeatureStore(tmp_path, STREAMS, trust_pickle=True)
    assert store.video_ids() == ["v"]
    feats = store.load("v")
    np.testing.assert_allclose(feats["rgb"], ARR[:, :3], rtol=1e-6)
    np.testing.assert_allclose(feats["flow"], ARR[:, 3:], rtol=1e-6)


def test_per_stream_directories_of_other_formats(tmp_path):
    (tmp_path / "rgb").mkdir(), (tmp_path / "flow").mkdir()
    _write_csv(tmp_path / "rgb" / "v.csv", ARR[:, :3])
    np.savez(tmp_path / "flow" / "v.npz", only=ARR[:, 3:])  # the only array, whatever its name
    feats = FeatureStore({"rgb": tmp_path / "rgb", "flow": tmp_path / "flow"}, STREAMS).load("v")
    np.testing.assert_allclose(np.concatenate([feats["rgb"], feats["flow"]], 1), ARR, rtol=1e-6)


def test_hdf5_one_file_a_dataset_per_video(tmp_path):
    h5py = pytest.importorskip("h5py", reason="h5py is the optional extra dcltal[h5]")
    with h5py.File(tmp_path / "feats.h5", "w") as f:
        f["v_a"] = ARR
        f["v_b"] = ARR[:4] * 2
    with h5py.File(tmp_path / "flow.hdf5", "w") as f:
        f["v_a"] = ARR[:, 3:]
    store = FeatureStore(tmp_path / "feats.h5", STREAMS)
    assert store.video_ids() == ["v_a", "v_b"]
    np.testing.assert_array_equal(store.load("b")["rgb"], ARR[:4, :3] * 2)  # ActivityNet's id without v_
    per_stream = FeatureStore({"rgb": tmp_path / "feats.h5", "flow": tmp_path / "flow.hdf5"}, {"rgb": [0, 5], "flow": [0, 2]})
    np.testing.assert_array_equal(per_stream.load("v_a")["flow"], ARR[:, 3:])
    with pytest.raises(UserError, match=r"no dataset for video b in .*flow\.hdf5"):
        per_stream.load("b")


def test_hdf5_without_h5py_names_the_extra(tmp_path, monkeypatch):
    (tmp_path / "feats.h5").write_bytes(b"")
    monkeypatch.setitem(sys.modules, "h5py", None)  # import h5py now fails
    with pytest.raises(UserError, match=r"feats\.h5 needs h5py, which is not installed: pip install 'dcltal\[h5\]'"):
        FeatureStore(tmp_path / "feats.h5", STREAMS).video_ids()


def test_pickles_only_where_trusted(tmp_path):
    WRITERS["v.pkl"](tmp_path / "v.pkl", ARR)
    with pytest.raises(UserError, match=r"v\.pkl is a pickle.*data\.trust_pickle=true"):
        FeatureStore(tmp_path, STREAMS).load("v")


@pytest.mark.parametrize("name, write, match", [
    ("v.npz", lambda p: np.savez(p, a=ARR, b=ARR), r"holds arrays \['a', 'b'\]; expected one, or one named 'feats'"),
    ("v.npz", lambda p: p.write_text("no zip"), r"v\.npz is not a valid \.npz"),
    ("v.csv", lambda p: p.write_text("f0,f1\n1,x\n"), r"v\.csv is not a CSV of numbers"),
])
def test_bad_files_are_one_line_mistakes(tmp_path, name, write, match):
    write(tmp_path / name)
    with pytest.raises(UserError, match=match):
        FeatureStore(tmp_path, STREAMS).load("v")


def test_prefix_suffix_and_v_names_either_way(tmp_path):
    np.save(tmp_path / "i3d_v_abc_feat.npy", ARR)
    np.save(tmp_path / "i3d_xyz_feat.npy", ARR * 2)
    np.save(tmp_path / "other.npy", ARR)  # no prefix: not a video of this store
    store = FeatureStore(tmp_path, STREAMS, prefix="i3d_", suffix="_feat")
    assert store.video_ids() == ["v_abc", "xyz"]
    assert "abc" in store and "v_xyz" in store and "other" not in store
    np.testing.assert_array_equal(store.load("abc")["rgb"], ARR[:, :3])
    np.testing.assert_array_equal(store.load("v_xyz")["rgb"], 2 * ARR[:, :3])
    with pytest.raises(UserError, match=r"feature file not found: .*i3d_other_feat\.npy"):
        store.load("other")


def test_config_keys_reach_the_store(tmp_path):
    WRITERS["v.pkl"](tmp_path / "pre_v.pkl", ARR)
    cfg = load_config(None, [f"data.features={tmp_path}", "data.streams={rgb: [0, 3], flow: [3, 5]}",
                             "data.feature_prefix=pre_", "data.trust_pickle=true"])
    np.testing.assert_array_equal(FeatureStore.from_config(cfg.data).load("v")["flow"], ARR[:, 3:])
