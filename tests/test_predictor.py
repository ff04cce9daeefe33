"""Predictor: a checkpoint file -> predict(features, proposals), with the real Detector."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import dcltal
from dcltal.config import Config
from dcltal.engine.checkpoint import FORMAT as CHECKPOINT_FORMAT
from dcltal.data.videos import VideoRecord
from dcltal.engine.detection.predictor import Predictor
from dcltal.engine.detection.video_classifier import train_video_classifier
from dcltal.errors import UserError
from dcltal.model.detector import Detector

D, C = 8, 3
CLASSES = ["a", "b", "c"]


def _config() -> Config:
    cfg = Config()
    cfg.data.streams = {"rgb": [0, D], "flow": [D, 2 * D]}
    cfg.model.hidden_dim, cfg.model.cls_hidden, cfg.model.loc_hidden = 4, 16, 24
    return cfg


def _video(seed=0, t=40, n=30):
    rng = np.random.default_rng(seed)
    feats = np.abs(rng.normal(size=(t, 2 * D))).astype(np.float32)
    start = rng.uniform(0, 4, n)
    props = np.stack([start, start + rng.uniform(0.3, 2.5, n), rng.uniform(size=n)], 1)
    return feats, props


def _checkpoint(path, with_classifier=True, seed=0):
    cfg = _config()
    torch.manual_seed(seed)
    streams = {s: {"dim": D, "state_dict": Detector.from_config(cfg.model, D, C).state_dict()} for s in ("rgb", "flow")}
    vc = None
    if with_classifier:
        videos = [_video(s)[0] for s in range(4)]
        vc = train_video_classifier([{"rgb": f[:, :D], "flow": f[:, D:]} for f in videos],
                                    [np.array([s % C]) for s in range(4)], C, epochs=2, progress=False)
    torch.save({"format": CHECKPOINT_FORMAT, "config": cfg.to_dict(), "classes": CLASSES, "streams": streams,
                "coder": {"kind": "agnostic", "mean": [0.01, -0.02], "std": [0.1, 0.2]},
                "video_classifier": vc, "epoch": 1, "best_score": 0.0}, path)
    return path


def test_predict_from_array_or_streams_and_against_detect(tmp_path):
    model = dcltal.load(_checkpoint(tmp_path / "m.pt"))
    feats, props = _video(7)
    dets = model.predict(feats, props)
    assert dets and dets == model.predict({"rgb": feats[:, :D], "flow": feats[:, D:]}, props[:, :2])
    assert all(d["label"] in CLASSES and 0 <= d["segment"][0] <= d["segment"][1] for d in dets)
    scores = [d["score"] for d in dets]
    assert scores == sorted(scores, reverse=True)
    # predict() is detect() on one record, with the built-in video-level scores
    record = VideoRecord("video", _grid(model), _grid(model).duration(len(feats)),  # predict()'s duration: the features'
                         {"rgb": feats[:, :D], "flow": feats[:, D:]}, props)
    assert model.detect([record])["results"]["video"] == dets
    # the built-in video-level classifier keeps at most video_top_k classes
    assert len({d["label"] for d in dets}) <= model.cfg.infer.video_top_k


def _grid(predictor):
    from dcltal.data.grid import TimeGrid

    d = predictor.cfg.data
    return TimeGrid(d.fps, d.feature_stride, d.feature_window)


def test_overrides_and_explicit_video_scores(tmp_path):
    model = dcltal.load(_checkpoint(tmp_path / "m.pt"))
    feats, props = _video(3)
    only_c = model.predict(feats, props, video_level=[0.0, 0.0, 1.0])
    assert only_c and {d["label"] for d in only_c} == {"c"}
    soft = model.predict(feats, props, nms="soft", video_scores=None, max_detections=500)
    hard = model.predict(feats, props, max_detections=500)
    assert len(soft) >= len(hard)


def test_split_of_one_checkpoint_with_itself_changes_nothing(tmp_path):
    a = dcltal.load(_checkpoint(tmp_path / "a.pt"))
    b = dcltal.load(_checkpoint(tmp_path / "b.pt", seed=1))
    feats, props = _video(5)
    assert a.with_localization_from(a).predict(feats, props) == a.predict(feats, props)
    mixed = a.with_localization_from(b).predict(feats, props)
    assert mixed != a.predict(feats, props) and mixed != b.predict(feats, props)


def test_mistakes_are_user_errors(tmp_path):
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="bad.pt"):
        dcltal.load(tmp_path / "bad.pt")
    with pytest.raises(UserError, match="not found"):
        dcltal.load(tmp_path / "missing.pt")
    model = dcltal.load(_checkpoint(tmp_path / "m.pt", with_classifier=False))
    feats, props = _video(1)
    with pytest.raises(UserError, match="expected \\[T, C\\]"):
        model.predict(feats[:, :D], props)
    with pytest.raises(UserError, match="no built-in video-level classifier"):
        model.detect([VideoRecord("v", _grid(model), _grid(model).duration(len(feats)),
                                  {"rgb": feats[:, :D], "flow": feats[:, D:]}, props)])
    with pytest.raises(UserError, match="no built-in video-level classifier"):
        model.predict(feats, props)
    assert model.predict(feats, props, video_scores=None)


def _synth_setup(tmp_path):
    from dcltal.data.synth import write_synthetic

    write_synthetic(tmp_path / "synth", seed=0, videos_train=2, videos_test=3, classes=C, dim=D, progress=False)
    cfg = tmp_path / "cfg.yaml"
    s = tmp_path / "synth"
    cfg.write_text(f"data:\n  annotations: {s / 'annotations.json'}\n  features: {s / 'features'}\n"
                   f"  proposals: {s / 'proposals'}\n  classes: {s / 'classes.txt'}\n"
                   f"  streams: {{rgb: [0, {D}], flow: [{D}, {2 * D}]}}\ntrain:\n  device: cpu\n")
    return cfg, (s / "classes.txt").read_text().split()


def test_infer_command_on_a_subset_without_annotations_and_mixed(tmp_path, capsys):
    import json

    from dcltal.cli import main

    cfg, classes = _synth_setup(tmp_path)
    global CLASSES
    saved, CLASSES = CLASSES, classes
    try:
        a, b = _checkpoint(tmp_path / "a.pt"), _checkpoint(tmp_path / "b.pt", seed=1)
    finally:
        CLASSES = saved
    out = tmp_path / "res.json"
    assert main(["infer", str(cfg), "--checkpoint", str(a), "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert sorted(res["results"]) == [f"video_test_{i:07d}" for i in (1, 2, 3)]
    assert all(d["label"] in classes for dets in res["results"].values() for d in dets)
    # new videos with no annotation file: every video in data.features
    assert main(["infer", str(cfg), "--checkpoint", str(a), "--out", str(out), "--set", "data.annotations=null"]) == 0
    every = json.loads(out.read_text())["results"]
    assert len(every) == 5
    # the same detections; ends at the video's end may differ by the duration's rounding
    one, ann = every["video_test_0000001"], res["results"]["video_test_0000001"]
    assert [(d["label"], d["score"]) for d in one] == [(d["label"], d["score"]) for d in ann]
    np.testing.assert_allclose([d["segment"] for d in one], [d["segment"] for d in ann], atol=1e-3)
    # Table 3: classification of one checkpoint, localization of another
    assert main(["infer", str(cfg), "--cls-from", str(a), "--loc-from", str(b), "--out", str(out)]) == 0
    mixed = json.loads(out.read_text())["results"]
    assert mixed != res["results"] and set(mixed) == set(res["results"])
    # mistakes: exit 2, one line
    capsys.readouterr()
    assert main(["infer", str(cfg), "--checkpoint", str(tmp_path / "nope.pt"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope.pt" in err[0]
    assert main(["infer", str(cfg), "--out", str(out)]) == 2


def test_infer_with_an_external_video_scores_file(tmp_path):
    import json

    from dcltal.cli import main

    cfg, classes = _synth_setup(tmp_path)
    global CLASSES
    saved, CLASSES = CLASSES, classes
    try:
        ckpt = _checkpoint(tmp_path / "a.pt", with_classifier=False)
    finally:
        CLASSES = saved
    videos = [f"video_test_{i:07d}" for i in (1, 2, 3)]
    scores = tmp_path / "scores.json"
    scores.write_text(json.dumps({v: {classes[2]: 0.9, classes[0]: 0.1} for v in videos}))
    out = tmp_path / "res.json"
    assert main(["infer", str(cfg), "--checkpoint", str(ckpt), "--out", str(out),
                 "--set", f"infer.video_scores={scores}", "infer.video_top_k=1"]) == 0
    res = json.loads(out.read_text())["results"]
    assert all(d["label"] == classes[2] for v in videos for d in res[v]) and all(res[v] for v in videos)
    # the checkpoint has no built-in classifier: the default (builtin) is a mistake, null is not
    assert main(["infer", str(cfg), "--checkpoint", str(ckpt), "--out", str(out)]) == 2
    assert main(["infer", str(cfg), "--checkpoint", str(ckpt), "--out", str(out), "--set", "infer.video_scores=null"]) == 0


def test_predict_repairs_proposals_as_the_command_line_does(tmp_path, capsys):
    """Reversed proposals swapped, those reaching outside the video clipped, those wholly outside
    dropped, each with a counted warning; no detection outside the video."""
    model = dcltal.load(_checkpoint(tmp_path / "m.pt"))
    feats, _ = _video(5)
    duration = _grid(model).duration(feats.shape[0])
    props = np.array([[5.0, 1.0], [-3.0, 1e6], [1.0, 2.0], [duration + 1, duration + 4]])
    dets = model.predict(feats, props, video_scores=None)
    err = capsys.readouterr().err
    for kind in ("swapped", "clipped", "dropped"):
        assert f"{kind}): 1 (e.g. video)" in err, err
    assert dets and all(0 <= d["segment"][0] <= d["segment"][1] <= duration for d in dets)


@pytest.mark.parametrize("overrides, named", [
    ({"nms": "bogus"}, "infer.nms: unknown value 'bogus' \\(choose one of: hard, soft\\)"),
    ({"order": "typo"}, "infer.order"),
    ({"nms_iou": 7.0}, "infer.nms_iou: 7.0 must be in \\(0, 1\\]"),
    ({"top_k": "many"}, "infer.top_k: 'many' is not of type int"),
    ({"nmsiou": 0.5}, "unknown keyword 'nmsiou'; it takes duration, fps, video_level and the infer.\\* keys: .*nms_iou"),
])
def test_predict_checks_its_keywords_as_the_config_does(tmp_path, overrides, named):
    model = dcltal.load(_checkpoint(tmp_path / "m.pt"))
    feats, props = _video(2)
    with pytest.raises(UserError, match=f"^predict\\(\\): .*{named}"):
        model.predict(feats, props, **overrides)
    with pytest.raises(UserError, match=named):  # at once, before any video is read
        model.predict_many(iter(()), **overrides)
    assert model.predict(feats, props, nms_iou=1, order="nms_first")  # an int where a float is wanted is fine


def test_predict_many_over_a_list_and_over_a_directory(tmp_path, capsys):
    import json

    model = dcltal.load(_checkpoint(tmp_path / "m.pt"))
    videos = {f"v{i}": _video(10 + i) for i in range(3)}
    many = model.predict_many(((vid, f, p) for vid, (f, p) in videos.items()), nms="soft")
    assert next(many) == ("v0", model.predict(*videos["v0"], nms="soft"))  # one video at a time
    assert [vid for vid, _ in many] == ["v1", "v2"]
    # a directory of feature files and a proposal JSON: the same detections, durations from the features
    feats_dir = tmp_path / "features"
    feats_dir.mkdir()
    results = {}
    for vid, (f, p) in videos.items():
        np.save(feats_dir / f"{vid}.npy", f)
        results[vid] = [{"segment": [float(a), float(b)], "score": float(s)} for a, b, s in p]
    (tmp_path / "props.json").write_text(json.dumps({"results": results}))
    got = dict(model.predict_many(feats_dir, tmp_path / "props.json"))
    assert sorted(got) == sorted(videos)
    for vid, (f, p) in videos.items():
        assert got[vid] == model.predict(f, p), vid
    capsys.readouterr()
    with pytest.raises(UserError, match="needs proposals=PATH"):
        model.predict_many(feats_dir)
    with pytest.raises(UserError, match="not found"):
        model.predict_many(tmp_path / "nowhere", tmp_path / "props.json")
    with pytest.raises(UserError, match="expected \\(id, features, proposals\\)"):
        list(model.predict_many([videos["v0"]]))
