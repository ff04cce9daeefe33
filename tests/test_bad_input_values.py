"""Issue 16, items 3-4, from the command line: values that are not finite, not real or impossible;
text that is not UTF-8; a full disk; video ids that are paths. Each is one line and exit 2, or a
counted warning where the input can be repaired. The data and helpers are test_bad_input's.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import yaml

from faults import file_size_limit
from test_bad_input import (DIM, VIDEOS, _annotations, _assert_mistake, _features, _run, _warning, _write,  # noqa: F401
                            data)

BAD = b"\xff\xfe\x80"  # never UTF-8


def _features_dir(d, name, edit, vid="tr_1"):
    """A copy of the features where ``vid``'s array is ``edit(array)``."""
    out = d / "cases" / name
    out.mkdir(parents=True, exist_ok=True)
    for v in VIDEOS:
        np.save(out / f"{v}.npy", edit(_features(v)) if v == vid else _features(v), allow_pickle=False)
    return out


def _train(d, name, *sets):
    return ["train", d / "config.yaml", "--work-dir", d / "cases" / f"w_{name}", "--quiet", "--set", *sets]


def _times(x):
    return lambda a: a * x


def _float64_1e300(a):
    a = a.astype(np.float64)
    a[2, 3] = 1e300  # finite in float64, inf once cast to float32
    return a


@pytest.mark.parametrize("name, edit, words", [
    ("x1e30", _times(np.float32(1e30)), ["tr_1.npy", "magnitude"]),
    ("f64_1e300", _float64_1e300, ["tr_1.npy", "NaN or infinite", "float32"]),
    ("complex", _times(1 + 1j), ["tr_1.npy", "complex"]),
    ("strings", lambda a: np.array([["a", "b"], ["c", "d"]]), ["tr_1.npy", "<U1"]),
    ("structured", lambda a: np.zeros((60, 2), dtype=[("x", "f4"), ("y", "i4")]), ["tr_1.npy", "real numbers"]),
])
def test_features_not_finite_or_not_real_are_a_mistake(data, capsys, name, edit, words):
    feats = _features_dir(data, name, edit)
    rc, _, err = _run(_train(data, name, f"data.features={feats}"), capsys)
    _assert_mistake(rc, err, *words)


def test_features_far_shorter_than_the_duration_are_a_mistake(data, capsys):
    feats = _features_dir(data, "one_snippet", lambda a: a[:1])
    rc, _, err = _run(_train(data, "one_snippet", f"data.features={feats}"), capsys)
    _assert_mistake(rc, err, "tr_1", "cover")


def test_features_somewhat_short_are_a_counted_warning(data, capsys):
    feats = _features_dir(data, "short", lambda a: a[: len(a) * 4 // 5])
    rc, _, err = _run(_train(data, "short", f"data.features={feats}"), capsys)
    assert rc == 0, err
    assert ": 1 (e.g. tr_1" in _warning(err, "shorter than the annotated duration")


def test_feature_store_checks_coverage_of_the_duration(data):
    """The check itself, as data.videos.load_videos calls it: a video's features against its duration."""
    from dcltal.data.annotations import load_annotations
    from dcltal.data.features import FeatureStore
    from dcltal.errors import RepairLog, UserError

    videos = load_annotations(data / "annotations.json").videos
    streams = {"rgb": [0, DIM], "flow": [DIM, 2 * DIM]}
    full = FeatureStore(data / "features", streams, videos=videos, fps=30.0, stride=4, window=16)
    assert len(full.load("tr_1")["rgb"]) == len(_features("tr_1"))  # exactly covered: no warning, no error
    short = FeatureStore(_features_dir(data, "cov_short", lambda a: a[: len(a) * 4 // 5]), streams,
                         repairs=(log := RepairLog()), videos=videos)
    short.load("tr_1")
    short.load("tr_1")  # counted once a video
    assert sum(log.counts.values()) == 1
    one = FeatureStore(_features_dir(data, "cov_one", lambda a: a[:1]), streams, videos=videos)
    with pytest.raises(UserError, match="tr_1: its 1 feature snippets cover 0.5 s of its 16.0 s"):
        one.load("tr_1")


def test_duplicate_video_in_annotations_is_a_mistake(data, capsys):
    text = json.dumps(_annotations())
    twice = text.replace('"database": {', '"database": {"te_1": {"subset": "Test", "annotations": []}, ', 1)
    gt = _write(data / "cases" / "dup.json", twice)
    rc, _, err = _run(["eval", "--gt", gt, "--pred", data / "results.json", "--subset", "Test"], capsys)
    _assert_mistake(rc, err, "dup.json", "'te_1' twice")


def test_ground_truth_before_zero_is_dropped_with_a_counted_warning(data, capsys):
    obj = _annotations()
    obj["database"]["te_1"]["annotations"].append({"label": "Run", "segment": [-5.0, -1.0], "label_id": 1})
    gt = _write(data / "cases" / "negative.json", json.dumps(obj))
    rc, out, err = _run(["eval", "--gt", gt, "--pred", data / "results.json", "--subset", "Test"], capsys)
    assert rc == 0, err
    assert ": 1 (e.g. te_1 [-5.0, -1.0])" in _warning(err, "wholly before 0 s (dropped)")
    _, clean, _ = _run(["eval", "--gt", data / "annotations.json", "--pred", data / "results.json",
                        "--subset", "Test"], capsys)
    assert out == clean  # the same ground truth as without it


def test_zero_length_proposals_are_dropped_with_a_counted_warning(data, capsys):
    props = {"results": {v: [{"segment": [3.0, 3.0], "score": 0.9}, {"segment": [2.0, 6.0], "score": 0.8}]
                         for v in VIDEOS}}
    p = _write(data / "cases" / "zero_props.json", json.dumps(props))
    rc, _, err = _run(["eval-proposals", "--gt", data / "annotations.json", "--proposals", p, "--subset", "Test"],
                      capsys)
    assert rc == 0, err
    assert ": 2 (e.g. te_1)" in _warning(err, "zero-length proposals (dropped)")


@pytest.mark.parametrize("setting, key", [
    ("infer.stream_weights={rgb: .nan, flow: 6}", "infer.stream_weights.rgb"),
    ("infer.stream_weights.rgb=1", "infer.stream_weights is 'held_out', not a mapping"),
    ("data.fps=.inf", "data.fps"),
    ("train.fg_iou=.nan", "train.fg_iou"),
    ("train.seed=12345678901234567890123", "train.seed"),
    ("train.threads=100000", "train.threads"),
    ("data.streams={}", "data.streams"),
])
def test_impossible_settings_are_a_mistake(data, capsys, setting, key):
    rc, _, err = _run(["params", data / "config.yaml", "--set", setting], capsys)
    _assert_mistake(rc, err, key)


def test_set_on_a_key_of_a_mapping_merges_into_it(data, capsys):
    work = data / "cases" / "w_merge"
    rc, _, err = _run(["train", data / "config.yaml", "--work-dir", work, "--quiet", "--set",
                       "infer.stream_weights={rgb: 5, flow: 6}", "infer.stream_weights.rgb=2"], capsys)
    assert rc == 0, err
    stored = yaml.safe_load((work / "config.yaml").read_text())
    assert stored["infer"]["stream_weights"] == {"rgb": 2.0, "flow": 6.0}


def _not_utf8(path, at):
    raw = path.read_bytes()
    out = path.parent / "cases" / f"utf8_{path.name}"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(raw[:at] + BAD + raw[at:])
    return out


def _official(d, name, first=b"video_test_0000004 2.0 5.0\n"):
    folder = d / "cases" / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "Jump_test.txt").write_bytes(first)
    (folder / "Run_test.txt").write_bytes(b"video_test_0000004 7.0 9.0\n")
    return folder


NOT_UTF8 = {  # name: argv(d) -> (argv, file named, byte offset)
    "annotations": lambda d: (["eval", "--gt", _not_utf8(d / "annotations.json", 40), "--pred", d / "results.json",
                               "--subset", "Test"], "utf8_annotations.json", 40),
    "results": lambda d: (["eval", "--gt", d / "annotations.json", "--pred", _not_utf8(d / "results.json", 30),
                           "--subset", "Test"], "utf8_results.json", 30),
    "classes": lambda d: (["eval", "--gt", d / "annotations.json", "--pred", d / "results.json", "--subset", "Test",
                           "--classes", _not_utf8(d / "classes.txt", 2)], "utf8_classes.txt", 2),
    "config": lambda d: (["params", _not_utf8(d / "config.yaml", 5)], "utf8_config.yaml", 5),
    "proposals CSV": lambda d: (["eval-proposals", "--gt", d / "annotations.json", "--subset", "Test", "--proposals",
                                 _csv_dir_with(d, 20)], "te_1.csv", 20),
    "proposals JSON": lambda d: (["eval-proposals", "--gt", d / "annotations.json", "--subset", "Test", "--proposals",
                                  _write_bytes(d / "cases" / "p.json", b'{"results": {"' + BAD + b'": []}}')],
                                 "p.json", 14),
    "THUMOS14 txt": lambda d: (["convert", "thumos14", _official(d, "off_utf8", b"video_test_0000004 2.0 5.0\n" + BAD),
                                "--out", d / "cases" / "conv.json"], "Jump_test.txt", 27),
    "durations": lambda d: (["convert", "thumos14", _official(d, "off_dur"), "--out", d / "cases" / "conv.json",
                             "--durations", _write_bytes(d / "cases" / "dur.txt", b"video_test_0000004.mp4\n" + BAD)],
                            "dur.txt", 23),
}


def _write_bytes(path, raw):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw)
    return path


def _csv_dir_with(d, at):
    out = d / "cases" / "csv_utf8"
    out.mkdir(parents=True, exist_ok=True)
    for f in (d / "proposals").glob("*.csv"):
        raw = f.read_bytes()
        (out / f.name).write_bytes(raw[:at] + BAD + raw[at:] if f.stem == "te_1" else raw)
    return out


@pytest.mark.parametrize("case", list(NOT_UTF8))
def test_text_that_is_not_utf8_is_one_line_naming_the_file_and_byte(data, capsys, case):
    argv, name, offset = NOT_UTF8[case](data)
    rc, _, err = _run(argv, capsys)
    _assert_mistake(rc, err, name, f"byte {offset}", "UTF-8")


@pytest.mark.parametrize("vid", ["../../outside", "/abs/outside"])
def test_video_id_that_is_a_path_is_a_mistake(data, capsys, vid):
    obj = _annotations()
    obj["database"][vid] = obj["database"].pop("te_1")
    gt = _write(data / "cases" / "path_id.json", json.dumps(obj))
    rc, _, err = _run(["eval", "--gt", gt, "--pred", data / "results.json", "--subset", "Test"], capsys)
    _assert_mistake(rc, err, "path_id.json", repr(vid))
    props = _write(data / "cases" / "path_props.json", json.dumps({"results": {vid: []}}))
    rc, _, err = _run(["eval-proposals", "--gt", data / "annotations.json", "--proposals", props, "--subset", "Test"],
                      capsys)
    _assert_mistake(rc, err, "path_props.json", repr(vid))


def test_full_disk_is_one_line_naming_the_path_and_keeps_the_old_file(data):
    folder = _official(data, "off_full", b"".join(b"video_test_%07d 2.0 5.0\n" % i for i in range(1, 200)))
    out = data / "cases" / "full.json"
    out.write_text("{}")
    proc = subprocess.run([sys.executable, "-m", "dcltal", "convert", "thumos14", folder, "--out", out],
                          capture_output=True, text=True, preexec_fn=file_size_limit(1000),
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1
    assert "full.json" in proc.stderr and "File too large" in proc.stderr
    assert out.read_text() == "{}"
    assert not list(out.parent.glob(".full.json.*.tmp"))


def test_a_killed_writes_temporary_file_is_removed_by_the_next_write(data, capsys):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = data / "cases" / "conv_stale.json"
    stale = out.parent / f".{out.name}.{socket.gethostname()}-{dead.pid}-abc.tmp"
    live = out.parent / f".{out.name}.{socket.gethostname()}-{os.getpid()}-abc.tmp"  # a write under way: kept
    stale.write_text("half")
    live.write_text("half")
    rc, _, err = _run(["convert", "thumos14", _official(data, "off_stale"), "--out", out], capsys)
    assert rc == 0, err
    assert not stale.exists() and live.exists()
