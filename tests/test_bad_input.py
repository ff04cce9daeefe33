"""CONTRACT §3, from the command line: every user mistake ends with exit code 2 and one line on
stderr that names the file or key (never a traceback); every repairable case gives a counted
warning and the run goes on.

The sweep covers the commands that exist: a case whose command module is not in this version is
skipped, so the sweep grows with the tool. Data are small files written here in the real formats.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from dcltal import cli

CLASSES = ["Jump", "Run"]
FPS, STRIDE, WINDOW, DIM = 30.0, 4, 16, 8
VIDEOS = {"tr_1": "Validation", "tr_2": "Validation", "te_1": "Test", "te_2": "Test"}
DURATION = 16.0


def _command_exists(command: str) -> bool:
    return importlib.util.find_spec(cli.COMMANDS[command][0]) is not None


def _needs(command: str):
    return pytest.mark.skipif(not _command_exists(command), reason=f"`dcltal {command}` not in this version")


def _annotations(zero_length=False, past_end=False):
    db = {}
    for i, (vid, subset) in enumerate(VIDEOS.items()):
        anns = [{"label": "Jump", "segment": [2.0 + i, 5.0 + i], "label_id": 0},
                {"label": "Run", "segment": [9.0, 12.5], "label_id": 1}]
        if zero_length and vid == "te_1":
            anns.append({"label": "Run", "segment": [7.0, 7.0], "label_id": 1})
        if past_end and vid == "tr_1":
            anns.append({"label": "Jump", "segment": [14.0, DURATION + 3], "label_id": 0})
        db[vid] = {"subset": subset, "duration": DURATION, "fps": FPS, "annotations": anns}
    return {"version": "test", "database": db}


def _features(vid, t=None, seed=0):
    t = int((DURATION * FPS - WINDOW) // STRIDE) + 1 if t is None else t
    rng = np.random.default_rng(seed + sum(map(ord, vid)))
    return rng.normal(size=(t, 2 * DIM)).astype(np.float32)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A tiny data set in the real formats, a config over it, and valid detections."""
    d = tmp_path_factory.mktemp("bad_input")
    (d / "annotations.json").write_text(json.dumps(_annotations()))
    (d / "features").mkdir()
    (d / "proposals").mkdir()
    for vid in VIDEOS:
        np.save(d / "features" / f"{vid}.npy", _features(vid))
        rows = "\n".join(f"{s / DURATION:.6f},{(s + w) / DURATION:.6f},{0.9 - 0.01 * k:.3f}"
                         for k, (s, w) in enumerate((s, w) for s in np.arange(0, 13, 1.0) for w in (2.0, 3.5)))
        (d / "proposals" / f"{vid}.csv").write_text("xmin,xmax,score\n" + rows + "\n")
    (d / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    config = {
        "data": {"annotations": str(d / "annotations.json"), "features": str(d / "features"),
                 "proposals": str(d / "proposals"), "classes": str(d / "classes.txt"),
                 "fps": FPS, "feature_stride": STRIDE, "feature_window": WINDOW,
                 "streams": {"rgb": [0, DIM], "flow": [DIM, 2 * DIM]}},
        "model": {"hidden_dim": 8, "num_classes": 2, "cls_hidden": 16, "loc_hidden": 16},
        "train": {"epochs": 1, "device": "cpu", "videos_per_batch": 2},
        "infer": {"video_scores": None},  # no built-in video classifier: not what is tested here, and slow
    }
    (d / "config.yaml").write_text(yaml.safe_dump(config))
    results = {"version": "test", "results": {"te_1": [{"label": "Jump", "score": 0.9, "segment": [2.0, 5.0]}],
                                              "te_2": [{"label": "Run", "score": 0.8, "segment": [9.0, 12.0]}]},
               "external_data": {}}
    (d / "results.json").write_text(json.dumps(results))
    (d / "broken.json").write_text('{"database": {"te_1": ')
    return d


def _run(argv, capsys):
    rc = cli.main([str(a) for a in argv])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def _assert_mistake(rc, err, *names):
    """Exit 2; one error line, the last on stderr, naming each of ``names``; no traceback."""
    lines = err.strip().splitlines()
    errors = [line for line in lines if line.startswith("dcltal: error:")]
    assert rc == 2, err
    assert "Traceback" not in err
    # the error must stand on a line of its own: a progress bar left open when the error propagates
    # (a tqdm not closed in a `with`) shares the line with it, on a terminal as in a log
    assert len(errors) == 1 and lines[-1] == errors[0], f"error line not alone on stderr: {err!r}"
    for name in names:
        assert str(name) in errors[0], f"{name!r} not named in: {errors[0]}"


# ---------------------------------------------------------------- mistakes: each a case


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _bad_label_results(d):
    obj = json.loads((d / "results.json").read_text())
    obj["results"]["te_1"].append({"label": "Fly", "score": 0.5, "segment": [1.0, 2.0]})
    return _write(d / "cases" / "bad_label.json", json.dumps(obj))


def _official_dir(d, bad_file, bad_line):
    """Official THUMOS14 per-class txt files, ``bad_file`` gets ``bad_line`` as its second line."""
    out = d / "cases" / f"official_{bad_file}"
    out.mkdir(parents=True, exist_ok=True)
    for name in ("Jump_test.txt", "Run_test.txt"):
        extra = bad_line if name == bad_file else ""
        (out / name).write_text("video_test_0000004  2.0 5.0\n" + extra)
    return out


def _bad_csv_dir(d):
    src = d / "proposals"
    out = d / "cases" / "bad_csv"
    out.mkdir(parents=True, exist_ok=True)
    for f in src.glob("*.csv"):
        (out / f.name).write_text(f.read_text())
    (out / "te_1.csv").write_text("xmin,xmax,score\n0.1,0.2,0.5\n0.3,oops,0.4\n")
    return out


def _features_with(d, name, edit):
    """A copy of the feature directory with tr_1 (a training video) changed by ``edit``."""
    out = d / "cases" / name
    out.mkdir(parents=True, exist_ok=True)
    for vid in VIDEOS:
        arr = _features(vid)
        np.save(out / f"{vid}.npy", edit(arr) if vid == "tr_1" else arr)
    return out


def _nan(arr):
    arr[3, 2] = np.nan
    return arr


MISTAKES = {
    # name: (command, argv(d) -> list, names the error line must hold)
    "eval: missing ground truth": (
        "eval", lambda d: ["eval", "--gt", d / "nope.json", "--pred", d / "results.json", "--subset", "Test"],
        lambda d: ["nope.json"]),
    "eval: missing results": (
        "eval", lambda d: ["eval", "--gt", d / "annotations.json", "--pred", d / "nope.json", "--subset", "Test"],
        lambda d: ["nope.json"]),
    "eval: malformed ground truth JSON": (
        "eval", lambda d: ["eval", "--gt", d / "broken.json", "--pred", d / "results.json", "--subset", "Test"],
        lambda d: ["broken.json", "line 1"]),
    "eval: malformed results JSON": (
        "eval", lambda d: ["eval", "--gt", d / "annotations.json", "--pred", d / "broken.json", "--subset", "Test"],
        lambda d: ["broken.json"]),
    "eval: prediction label not a class": (
        "eval", lambda d: ["eval", "--gt", d / "annotations.json", "--pred", _bad_label_results(d), "--subset", "Test"],
        lambda d: ["Fly"]),
    "eval: unknown subset": (
        "eval", lambda d: ["eval", "--gt", d / "annotations.json", "--pred", d / "results.json", "--subset", "Tset"],
        lambda d: ["Tset"]),
    "eval-proposals: missing proposals": (
        "eval-proposals", lambda d: ["eval-proposals", "--gt", d / "annotations.json", "--proposals", d / "nope",
                                     "--subset", "Test"],
        lambda d: ["nope"]),
    "eval-proposals: malformed CSV": (
        "eval-proposals", lambda d: ["eval-proposals", "--gt", d / "annotations.json", "--proposals", _bad_csv_dir(d),
                                     "--subset", "Test"],
        lambda d: ["te_1.csv", "line 3"]),
    "convert: missing annotation directory": (
        "convert", lambda d: ["convert", "thumos14", d / "no_such_dir", "--out", d / "cases" / "out.json"],
        lambda d: ["no_such_dir"]),
    "convert: malformed official annotation line": (
        "convert", lambda d: ["convert", "thumos14", _official_dir(d, "Jump_test.txt", "video_test_0000004  1.0 x\n"),
                              "--out", d / "cases" / "out.json"],
        lambda d: ["Jump_test.txt", "line 2"]),
    "convert: malformed durations file": (
        "convert", lambda d: ["convert", "thumos14", _official_dir(d, "Run_test.txt", "video_test_0000004  1.0 2.0\n"),
                              "--out", d / "cases" / "out.json",
                              "--durations", _write(d / "cases" / "durations.txt", "video_test_0000004.mp4\nlong\n")],
        lambda d: ["durations.txt"]),
    "params: missing config": (
        "params", lambda d: ["params", d / "nope.yaml"], lambda d: ["nope.yaml"]),
    "params: malformed YAML": (
        "params", lambda d: ["params", _write(d / "cases" / "bad.yaml", "data: [1, 2\nmodel: {")],
        lambda d: ["bad.yaml"]),
    "params: unknown config key": (
        "params", lambda d: ["params", _write(d / "cases" / "typo.yaml", "model:\n  hiden_dim: 8\n")],
        lambda d: ["model.hiden_dim"]),
    "params: unknown --set key": (
        "params", lambda d: ["params", d / "config.yaml", "--set", "train.epohcs=3"], lambda d: ["train.epohcs"]),
    "params: unknown model variant": (
        "params", lambda d: ["params", d / "config.yaml", "--set", "model.variant=dnett"], lambda d: ["model.variant"]),
    "train: missing features directory": (
        "train", lambda d: ["train", d / "config.yaml", "--work-dir", d / "cases" / "w1",
                            "--set", f"data.features={d / 'no_features'}"],
        lambda d: ["no_features"]),
    "train: feature array of the wrong width": (
        "train", lambda d: ["train", d / "config.yaml", "--work-dir", d / "cases" / "w2",
                            "--set", f"data.streams.flow=[{DIM},{3 * DIM}]"],
        lambda d: [".npy"]),
    "train: NaN in a feature array": (
        "train", lambda d: ["train", d / "config.yaml", "--work-dir", d / "cases" / "w3",
                            "--set", f"data.features={_features_with(d, 'nan_features', _nan)}"],
        lambda d: ["tr_1.npy"]),
    "train: unknown --set key": (
        "train", lambda d: ["train", d / "config.yaml", "--work-dir", d / "cases" / "w4", "--set", "data.fpss=25"],
        lambda d: ["data.fpss"]),
    "train: negative learning rate": (
        "train", lambda d: ["train", d / "config.yaml", "--work-dir", d / "cases" / "w5", "--set", "train.lr=-1"],
        lambda d: ["train.lr"]),
    "train: tIoU threshold above 1 (caught before training)": (
        "train", lambda d: ["train", d / "config.yaml", "--work-dir", d / "cases" / "w6", "--set", "eval.tiou=[1.5]"],
        lambda d: ["eval.tiou"]),
    "train: held-out fraction of 1.5": (
        "train", lambda d: ["train", d / "config.yaml", "--work-dir", d / "cases" / "w7", "--set",
                            "train.val_fraction=1.5"],
        lambda d: ["train.val_fraction"]),
    "train: work dir under a file": (
        "train", lambda d: ["train", d / "config.yaml", "--work-dir", d / "classes.txt" / "w"],
        lambda d: ["classes.txt"]),
    "params: hidden size 0": (
        "params", lambda d: ["params", d / "config.yaml", "--set", "model.hidden_dim=0"], lambda d: ["model.hidden_dim"]),
    "eval: --json names a directory": (
        "eval", lambda d: ["eval", "--gt", d / "annotations.json", "--pred", d / "results.json", "--subset", "Test",
                           "--json", d / "features"],
        lambda d: ["features", "directory"]),
    "eval: a bad --tiou (argparse's error on one line)": (
        "eval", lambda d: ["eval", "--gt", d / "annotations.json", "--pred", d / "results.json", "--subset", "Test",
                           "--tiou", "abc"],
        lambda d: ["--tiou", "abc"]),
    "infer: --checkpoint beside both --cls-from and --loc-from (it would be ignored)": (
        "infer", lambda d: ["infer", d / "config.yaml", "--checkpoint", d / "a.pt", "--cls-from", d / "b.pt",
                            "--loc-from", d / "c.pt", "--out", d / "cases" / "r.json"],
        lambda d: ["--checkpoint", "--cls-from"]),
    "infer: missing checkpoint": (
        "infer", lambda d: ["infer", d / "config.yaml", "--checkpoint", d / "nope.pt", "--out", d / "cases" / "r.json"],
        lambda d: ["nope.pt"]),
}


@pytest.mark.parametrize("case", list(MISTAKES))
def test_mistake_exits_2_with_one_line(case, data, capsys):
    command, argv, names = MISTAKES[case]
    if not _command_exists(command):
        pytest.skip(f"`dcltal {command}` not in this version")
    rc, _, err = _run(argv(data), capsys)
    _assert_mistake(rc, err, *names(data))


@_needs("eval")
def test_mistake_through_the_real_entry_point(data):
    """The installed entry point (``python -m dcltal``) prints the one line too, no traceback."""
    proc = subprocess.run([sys.executable, "-m", "dcltal", "eval", "--gt", str(data / "nope.json"),
                           "--pred", str(data / "results.json"), "--subset", "Test"],
                          capture_output=True, text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "nope.json" in proc.stderr and "Traceback" not in proc.stderr


# ---------------------------------------------------------------- repairs: a counted warning, the run goes on


def _warning(err: str, words: str) -> str:
    found = [line for line in err.splitlines() if line.startswith("warning") and words in line]
    assert len(found) == 1, err
    return found[0]


@_needs("eval")
def test_zero_length_ground_truth_is_kept_with_a_warning(data, capsys):
    gt = _write(data / "cases" / "zero_gt.json", json.dumps(_annotations(zero_length=True)))
    rc, out, err = _run(["eval", "--gt", gt, "--pred", data / "results.json", "--subset", "Test"], capsys)
    assert rc == 0, err
    assert _warning(err, "zero-length").rstrip().endswith(")")  # "...: 1 (e.g. te_1 ...)"
    assert ": 1 (e.g." in _warning(err, "zero-length")


@_needs("eval")
def test_reversed_detections_are_swapped_with_a_warning(data, capsys):
    obj = json.loads((data / "results.json").read_text())
    obj["results"]["te_1"][0]["segment"] = [5.0, 2.0]  # the ground truth's [2, 5], reversed
    p = _write(data / "cases" / "reversed.json", json.dumps(obj))
    rc, out, err = _run(["eval", "--gt", data / "annotations.json", "--pred", p, "--subset", "Test"], capsys)
    assert rc == 0, err
    assert ": 1 (e.g. te_1 [5.0, 2.0])" in _warning(err, "start after end")
    rc, fixed, _ = _run(["eval", "--gt", data / "annotations.json", "--pred", data / "results.json", "--subset", "Test"],
                        capsys)
    assert out == fixed  # scored as the swapped segment


@_needs("eval-proposals")
def test_proposals_outside_the_video_are_clipped_with_a_warning(data, capsys):
    props = {"results": {vid: [{"segment": [-2.0, 4.0], "score": 0.9}, {"segment": [10.0, DURATION + 5], "score": 0.8},
                               {"segment": [3.0, 6.0], "score": 0.7}] for vid in VIDEOS}}
    p = _write(data / "cases" / "outside.json", json.dumps(props))
    rc, _, err = _run(["eval-proposals", "--gt", data / "annotations.json", "--proposals", p, "--subset", "Test"], capsys)
    assert rc == 0, err
    assert ": 4 (e.g." in _warning(err, "clipped")  # 2 proposals in each of the 2 test videos


@_needs("eval-proposals")
def test_video_without_proposals_is_a_warning(data, capsys):
    props = {"results": {"te_1": [{"segment": [2.0, 5.0], "score": 0.9}]}}
    p = _write(data / "cases" / "one_video.json", json.dumps(props))
    rc, _, err = _run(["eval-proposals", "--gt", data / "annotations.json", "--proposals", p, "--subset", "Test"], capsys)
    assert rc == 0, err
    assert "te_2" in _warning(err, "no proposals")


def _per_stream_features(d, cut):
    """rgb/ and flow/ directories; tr_1's flow (a training video) is ``cut`` snippets shorter."""
    out = d / "cases" / f"streams_cut{cut}"
    for s in ("rgb", "flow"):
        (out / s).mkdir(parents=True, exist_ok=True)
    for vid in VIDEOS:
        arr = _features(vid)
        np.save(out / "rgb" / f"{vid}.npy", arr[:, :DIM])
        np.save(out / "flow" / f"{vid}.npy", arr[: len(arr) - (cut if vid == "tr_1" else 0), DIM:])
    return out


@pytest.fixture(scope="module")
def trained(data):
    """One short training run (the only slow step here) on repairable input: tr_1's streams one
    snippet apart and a ground truth of tr_1 ending after the video. Gives (rc, stderr, checkpoint)."""
    import contextlib
    import io

    feats = _per_stream_features(data, 1)
    gt = _write(data / "cases" / "past_end.json", json.dumps(_annotations(past_end=True)))
    work = data / "cases" / "w_repair"
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = cli.main(["train", str(data / "config.yaml"), "--work-dir", str(work), "--set",
                       f"data.features={{rgb: {feats / 'rgb'}, flow: {feats / 'flow'}}}", f"data.annotations={gt}"])
    return rc, err.getvalue(), work / "checkpoints" / "last.pt"


@_needs("train")
def test_train_repairs_stream_lengths_and_ground_truth_past_the_end(trained):
    """Streams of one video one snippet apart are cut, ground truth past the video's end is
    clipped; both with a counted warning, and training runs to its checkpoint."""
    rc, err, checkpoint = trained
    assert rc == 0, err
    assert "tr_1" in _warning(err, "cut to the shorter")
    assert ": 1 (e.g." in _warning(err, "ground truth ending after the video")
    assert checkpoint.is_file()


def _infer(data, checkpoint, name, *overrides):
    out = data / "cases" / f"{name}.json"
    argv = ["infer", data / "config.yaml", "--checkpoint", checkpoint, "--out", out]
    return (argv + ["--set", *overrides]) if overrides else argv, out


@_needs("infer")
@_needs("train")
def test_infer_nan_features_is_a_mistake(data, trained, capsys):
    def nan_in_test(arr):
        arr[5, DIM + 1] = np.inf
        return arr

    feats = data / "cases" / "inf_features"
    feats.mkdir(parents=True, exist_ok=True)
    for vid in VIDEOS:
        np.save(feats / f"{vid}.npy", nan_in_test(_features(vid)) if vid == "te_2" else _features(vid))
    argv, out = _infer(data, trained[2], "nan", f"data.features={feats}")
    rc, _, err = _run(argv, capsys)
    _assert_mistake(rc, err, "te_2.npy")
    assert not out.exists()


@_needs("infer")
@_needs("train")
def test_infer_features_narrower_than_the_streams_is_a_mistake(data, trained, capsys):
    feats = data / "cases" / "narrow_features"  # the checkpoint's streams, feature files 4 columns short
    feats.mkdir(parents=True, exist_ok=True)
    for vid in VIDEOS:
        np.save(feats / f"{vid}.npy", _features(vid)[:, : 2 * DIM - 4])
    argv, _ = _infer(data, trained[2], "narrow", f"data.features={feats}")
    rc, _, err = _run(argv, capsys)
    _assert_mistake(rc, err, ".npy")


@_needs("infer")
@_needs("train")
@pytest.mark.parametrize("streams, names", [
    (f"{{rgb: [0, {DIM // 2}], flow: [{DIM // 2}, {DIM}]}}", ["data.streams.", f"gives {DIM // 2}", f"expects {DIM}"]),
    (f"{{a: [0, {DIM}], b: [{DIM}, {2 * DIM}]}}", ["data.streams", "'a'", "'rgb'"]),
])
def test_infer_streams_unlike_the_checkpoint_are_a_mistake(data, trained, capsys, streams, names):
    """Features of another width, or other stream names, than the checkpoint was trained on."""
    argv, out = _infer(data, trained[2], "unlike", f"data.streams={streams}")
    rc, _, err = _run(argv, capsys)
    _assert_mistake(rc, err, *names)
    assert not out.exists()


@_needs("infer")
@_needs("train")
def test_infer_reads_only_the_checkpoints_streams(data, trained, capsys):
    """A stream of data.streams that the checkpoint lacks is not read, not a mistake."""
    argv, out = _infer(data, trained[2], "extra", f"data.streams={{rgb: [0, {DIM}], flow: [{DIM}, {2 * DIM}], "
                                                  f"audio: [0, 3]}}")
    rc, _, err = _run(argv, capsys)
    assert rc == 0, err
    assert json.loads(out.read_text())["results"]


@_needs("infer")
@_needs("train")
def test_infer_out_naming_a_directory_is_a_mistake(data, trained, capsys):
    argv, _ = _infer(data, trained[2], "unused")
    argv[argv.index("--out") + 1] = data / "features"
    rc, _, err = _run(argv, capsys)
    _assert_mistake(rc, err, "features", "directory")


@_needs("infer")
@_needs("train")
def test_infer_counts_streams_cut_to_the_shorter_once_a_video_in_one_line(data, trained, capsys):
    """Each video counted once, though inference reads it twice (without annotations: for its
    duration, then to detect) and the reads' cache holds 16 videos: 20 here, flow one snippet short."""
    feats = data / "cases" / "many_streams_cut"
    for s in ("rgb", "flow"):
        (feats / s).mkdir(parents=True, exist_ok=True)
    names = [f"new_{i:02d}" for i in range(20)]
    for vid in names:
        arr = _features(vid)
        np.save(feats / "rgb" / f"{vid}.npy", arr[:, :DIM])
        np.save(feats / "flow" / f"{vid}.npy", arr[:-1, DIM:])
    props = {"results": {vid: [{"segment": [2.0, 5.0], "score": 0.9}] for vid in names}}
    p = _write(data / "cases" / "many_props.json", json.dumps(props))
    argv, _ = _infer(data, trained[2], "cut", f"data.features={{rgb: {feats / 'rgb'}, flow: {feats / 'flow'}}}",
                     "data.annotations=null", f"data.proposals={p}")
    rc, _, err = _run(argv, capsys)
    assert rc == 0, err
    assert ": 20 (e.g. new_00" in _warning(err, "cut to the shorter")


@_needs("infer")
@_needs("train")
def test_infer_subset_without_annotations_is_a_mistake(data, trained, capsys):
    argv, _ = _infer(data, trained[2], "no_annotations", "data.annotations=null")
    rc, _, err = _run(argv + ["--subset", "Test"], capsys)
    _assert_mistake(rc, err, "'Test'", "data.annotations")


@_needs("train")
def test_resume_with_another_architecture_is_a_mistake(data, trained, capsys):
    work = trained[2].parent.parent
    rc, _, err = _run(["train", data / "config.yaml", "--work-dir", work, "--resume", "--set", "train.epochs=2",
                       "model.variant=baseline"], capsys)
    _assert_mistake(rc, err, "--resume", "last.pt")


@_needs("infer")
@_needs("train")
def test_infer_clips_proposals_and_warns_of_a_video_without_any(data, trained, capsys):
    props = {"results": {"te_1": [{"segment": [-1.0, 4.0], "score": 0.9}, {"segment": [8.0, DURATION + 2], "score": 0.8},
                                  {"segment": [2.0, 6.0], "score": 0.7}]}}
    p = _write(data / "cases" / "infer_props.json", json.dumps(props))
    argv, out = _infer(data, trained[2], "clipped", f"data.proposals={p}")
    rc, _, err = _run(argv, capsys)
    assert rc == 0, err
    assert ": 2 (e.g. te_1)" in _warning(err, "clipped")
    assert "te_2" in _warning(err, "no proposals")
    results = json.loads(out.read_text())["results"]
    assert results.get("te_2", []) == []
    assert all(0.0 <= d["segment"][0] <= d["segment"][1] <= DURATION for d in results["te_1"])


@_needs("train")
def test_train_streams_three_snippets_apart_is_a_mistake(data, capsys):
    feats = _per_stream_features(data, 3)
    rc, _, err = _run(["train", data / "config.yaml", "--work-dir", data / "cases" / "w_cut3", "--set",
                       f"data.features={{rgb: {feats / 'rgb'}, flow: {feats / 'flow'}}}"], capsys)
    _assert_mistake(rc, err, "tr_1")


@_needs("infer")
@_needs("train")
@pytest.mark.parametrize("scores, name", [
    ({"te_1": {"Jump": 0.9, "Fly": 0.2}, "te_2": {"Run": 0.5}}, "Fly"),  # a label that is not a class
    ({"te_1": {"Jump": 0.9}}, "te_2"),                                   # a video without scores
])
def test_infer_external_video_scores_mistakes(data, trained, capsys, scores, name):
    p = _write(data / "cases" / f"video_scores_{name}.json", json.dumps(scores))
    argv, _ = _infer(data, trained[2], f"vs_{name}", f"infer.video_scores={p}")
    rc, _, err = _run(argv, capsys)
    _assert_mistake(rc, err, name, "video_scores_")


@_needs("visualize")
@_needs("train")
def test_visualize_unknown_video_is_a_mistake(data, trained, capsys):
    rc, _, err = _run(["visualize", data / "config.yaml", "--checkpoint", trained[2], "--video", "te_9",
                       "--out", data / "cases" / "viz"], capsys)
    _assert_mistake(rc, err, "te_9")
