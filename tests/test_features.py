"""FeatureStore: both layouts of CONTRACT §1, the stream-length repair and every mistake."""
from __future__ import annotations

import numpy as np
import pytest

from dcltal.data.features import FeatureStore
from dcltal.errors import RepairLog, UserError

STREAMS = {"rgb": [0, 3], "flow": [3, 5]}


def _rand(t, c, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).normal(size=(t, c)).astype(dtype)


def test_column_ranges_of_one_array(tmp_path):
    arr = _rand(7, 5)
    np.save(tmp_path / "vid_a.npy", arr)
    np.save(tmp_path / "vid_b.npy", _rand(4, 6, seed=1))  # wider arrays are fine: extra columns unused
    (tmp_path / "notes.txt").write_text("not a feature file")
    store = FeatureStore(str(tmp_path), STREAMS)
    assert store.video_ids() == ["vid_a", "vid_b"]
    feats = store.load("vid_a")
    assert set(feats) == {"rgb", "flow"}
    np.testing.assert_array_equal(feats["rgb"], arr[:, 0:3])
    np.testing.assert_array_equal(feats["flow"], arr[:, 3:5])
    assert all(f.dtype == np.float32 and f.flags.c_contiguous for f in feats.values())


def test_float16_on_disk_loads_as_float32(tmp_path):
    arr = _rand(6, 5, dtype=np.float16)
    np.save(tmp_path / "v.npy", arr)
    feats = FeatureStore(tmp_path, STREAMS).load("v")
    assert feats["rgb"].dtype == np.float32
    np.testing.assert_array_equal(feats["flow"], arr[:, 3:5].astype(np.float32))


def _per_stream_dirs(tmp_path, rgb, flow, rgb_name="v.npy", flow_name="v.npy"):
    (tmp_path / "rgb").mkdir()
    (tmp_path / "flow").mkdir()
    for arr, d, name in ((rgb, "rgb", rgb_name), (flow, "flow", flow_name)):
        with open(tmp_path / d / name, "wb") as f:  # np.save would append .npy to an extension-less name
            np.save(f, arr)
    return {"rgb": str(tmp_path / "rgb"), "flow": str(tmp_path / "flow")}


def test_per_stream_directories_npy_and_extensionless(tmp_path):
    rgb, flow = _rand(5, 3), _rand(5, 2, seed=1)
    spec = _per_stream_dirs(tmp_path, rgb, flow, rgb_name="v", flow_name="v.npy")
    store = FeatureStore(spec, STREAMS)
    assert store.video_ids() == ["v"]
    feats = store.load("v")
    np.testing.assert_array_equal(feats["rgb"], rgb)
    np.testing.assert_array_equal(feats["flow"], flow)


def test_torch_files_with_and_without_extension(tmp_path):
    torch = pytest.importorskip("torch")
    (tmp_path / "rgb").mkdir()
    (tmp_path / "flow").mkdir()
    rgb, flow = torch.randn(6, 3), torch.randn(6, 2, dtype=torch.float64)
    torch.save(rgb, tmp_path / "rgb" / "video_test_0000004")  # as the P-GCN release names them
    torch.save(flow, tmp_path / "flow" / "video_test_0000004.pt")
    store = FeatureStore({"rgb": tmp_path / "rgb", "flow": tmp_path / "flow"}, STREAMS)
    assert store.video_ids() == ["video_test_0000004"]
    feats = store.load("video_test_0000004")
    np.testing.assert_array_equal(feats["rgb"], rgb.numpy())
    np.testing.assert_allclose(feats["flow"], flow.numpy(), rtol=1e-6)
    assert feats["flow"].dtype == np.float32


def test_torch_file_holding_no_tensor(tmp_path):
    torch = pytest.importorskip("torch")
    spec = _per_stream_dirs(tmp_path, _rand(4, 3), _rand(4, 2))
    (tmp_path / "rgb" / "v.npy").unlink()
    torch.save({"a": torch.zeros(2)}, tmp_path / "rgb" / "v.pt")
    with pytest.raises(UserError, match=r"v\.pt.*expected one \[T, D\] tensor"):
        FeatureStore(spec, STREAMS).load("v")


def test_video_ids_only_where_every_stream_has_a_file(tmp_path):
    spec = _per_stream_dirs(tmp_path, _rand(4, 3), _rand(4, 2))
    np.save(tmp_path / "rgb" / "only_rgb.npy", _rand(4, 3))
    store = FeatureStore(spec, STREAMS)
    assert store.video_ids() == ["v"]
    with pytest.raises(UserError, match="no feature file for video only_rgb in .*flow"):
        store.load("only_rgb")


@pytest.mark.parametrize("slack", [1, 2])
def test_streams_differing_by_one_or_two_snippets_are_cut(tmp_path, slack):
    rgb, flow = _rand(10, 3), _rand(10 - slack, 2, seed=1)
    log = RepairLog()
    feats = FeatureStore(_per_stream_dirs(tmp_path, rgb, flow), STREAMS, repairs=log).load("v")
    assert feats["rgb"].shape == (10 - slack, 3) and feats["flow"].shape == (10 - slack, 2)
    np.testing.assert_array_equal(feats["rgb"], rgb[: 10 - slack])
    assert sum(log.counts.values()) == 1


def test_cut_without_a_log_warns_at_once(tmp_path, capsys):
    FeatureStore(_per_stream_dirs(tmp_path, _rand(9, 3), _rand(8, 2)), STREAMS).load("v")
    err = capsys.readouterr().err
    assert "warning" in err and "cut to the shorter" in err and "v" in err


def test_streams_differing_by_more_are_an_error(tmp_path):
    store = FeatureStore(_per_stream_dirs(tmp_path, _rand(10, 3), _rand(7, 2)), STREAMS)
    with pytest.raises(UserError, match="video v: streams differ in length by 3"):
        store.load("v")


def test_columns_outside_the_array(tmp_path):
    np.save(tmp_path / "v.npy", _rand(5, 4))
    with pytest.raises(UserError, match=r"v\.npy has 4 columns, but the streams need 5"):
        FeatureStore(tmp_path, STREAMS).load("v")


def test_per_stream_width_must_match_the_range(tmp_path):
    store = FeatureStore(_per_stream_dirs(tmp_path, _rand(5, 4), _rand(5, 2)), STREAMS)
    with pytest.raises(UserError, match=r"rgb/v\.npy has 4 columns, but data.streams.rgb says 3"):
        store.load("v")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_names_the_file(tmp_path, bad):
    arr = _rand(5, 5)
    arr[2, 4] = bad
    np.save(tmp_path / "v.npy", arr)
    with pytest.raises(UserError, match=r"v\.npy holds NaN or infinite"):
        FeatureStore(tmp_path, STREAMS).load("v")


@pytest.mark.parametrize("shape", [(5,), (0, 5), (2, 5, 1)])
def test_wrong_rank_or_empty(tmp_path, shape):
    np.save(tmp_path / "v.npy", np.zeros(shape, np.float32))
    with pytest.raises(UserError, match=r"v\.npy has shape"):
        FeatureStore(tmp_path, STREAMS).load("v")


def test_missing_directory_and_file(tmp_path):
    with pytest.raises(UserError, match="features directory not found"):
        FeatureStore(tmp_path / "nope", STREAMS)
    with pytest.raises(UserError, match=r"feature file not found: .*absent\.npy"):
        FeatureStore(tmp_path, STREAMS).load("absent")


def test_corrupt_npy(tmp_path):
    (tmp_path / "v.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(UserError, match=r"v\.npy is not a valid \.npy"):
        FeatureStore(tmp_path, STREAMS).load("v")


def test_streams_of_spec_and_config_must_agree(tmp_path):
    spec = _per_stream_dirs(tmp_path, _rand(4, 3), _rand(4, 2))
    with pytest.raises(UserError, match="name different streams \\(flow\\)"):
        FeatureStore({"rgb": spec["rgb"]}, STREAMS)
    with pytest.raises(UserError, match="data.streams.rgb"):
        FeatureStore(tmp_path, {"rgb": [3, 3]})


def test_float16_cache_reads_each_file_once(tmp_path):
    arr = _rand(6, 5)
    np.save(tmp_path / "v.npy", arr)
    store = FeatureStore(tmp_path, STREAMS, cache=True)
    first = store.load("v")
    (tmp_path / "v.npy").unlink()  # a second load must not touch the disk
    second = store.load("v")
    for name in STREAMS:
        np.testing.assert_array_equal(first[name], second[name])
        assert second[name].dtype == np.float32
    np.testing.assert_array_equal(first["rgb"], arr[:, :3].astype(np.float16).astype(np.float32))
    assert store.cache["v"]["rgb"].dtype == np.float16


def test_cache_rejects_values_beyond_float16(tmp_path):
    arr = _rand(4, 5)
    arr[0, 0] = 1e6
    np.save(tmp_path / "v.npy", arr)
    with pytest.raises(UserError, match="float16 range"):
        FeatureStore(tmp_path, STREAMS, cache=True).load("v")
