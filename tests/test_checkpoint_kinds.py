"""A checkpoint of the wrong kind is a user mistake: the proposal generator's (model.kind: proposals)
where a detector's is needed (dcltal infer, visualize, dcltal.load), and a detector's in dcltal
propose. Exit 2 and one line that says what the file holds and what to use; the right kinds still run.

The checkpoints are built by hand (untrained, small) in the layout dcltal train writes.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

import dcltal
from dcltal import cli
from dcltal.config import load_config
from dcltal.engine.checkpoint import save_checkpoint
from dcltal.errors import UserError
from dcltal.model.bmn import BMN
from dcltal.model.detector import Detector
from dcltal.ops.segment_coder import SegmentCoder

FPS, STRIDE, WINDOW, DIM, T = 30.0, 4, 16, 4, 117  # 117 snippets: 16 s at 30 fps
CLASSES = ["Jump", "Run"]
VIDEOS = {"tr_1": "Validation", "te_1": "Test"}
SMALL_BMN = {"temporal_scale": 16, "max_duration": 6, "hidden_1d": 8, "hidden_3d": 8, "hidden_2d": 4, "groups": 2,
             "num_samples": 4, "windows_per_batch": 4, "max_proposals": 10}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Annotations, features and proposals for two videos; a config; one checkpoint of each kind."""
    d = tmp_path_factory.mktemp("kinds")
    db = {vid: {"subset": subset, "duration": 16.0, "fps": FPS,
                "annotations": [{"label": "Jump", "segment": [2.0, 5.0], "label_id": 0},
                                {"label": "Run", "segment": [9.0, 12.0], "label_id": 1}]}
          for vid, subset in VIDEOS.items()}
    (d / "annotations.json").write_text(json.dumps({"version": "t", "database": db}))
    (d / "features").mkdir()
    rng = np.random.default_rng(0)
    for vid in VIDEOS:
        np.save(d / "features" / f"{vid}.npy", rng.normal(size=(T, 2 * DIM)).astype(np.float32))
    props = {vid: [{"segment": [s, s + 3.0], "score": 0.5} for s in (1.0, 2.0, 8.5, 9.0)] for vid in VIDEOS}
    (d / "proposals.json").write_text(json.dumps({"results": props}))
    values = {"data": {"annotations": str(d / "annotations.json"), "features": str(d / "features"),
                       "proposals": str(d / "proposals.json"), "fps": FPS, "feature_stride": STRIDE,
                       "feature_window": WINDOW, "streams": {"rgb": [0, DIM], "flow": [DIM, 2 * DIM]}},
              "model": {"hidden_dim": 4, "cls_hidden": 8, "loc_hidden": 12, "num_classes": 2},
              "train": {"device": "cpu"}, "infer": {"video_scores": None}, "proposals": SMALL_BMN}
    config = d / "config.yaml"
    config.write_text(yaml.safe_dump(values, sort_keys=False))
    cfg = load_config(config)

    torch.manual_seed(0)
    streams = {s: {"dim": DIM, "state_dict": Detector.from_config(cfg.model, DIM, 2).state_dict()}
               for s in cfg.data.streams}
    detector = save_checkpoint(d / "detector.pt", {"config": cfg.to_dict(), "classes": CLASSES, "streams": streams,
                                                    "coder": SegmentCoder().state(), "video_classifier": None})
    gen_cfg = load_config(config, ["model.kind=proposals"])
    bmn = BMN.from_config(gen_cfg.proposals, 2 * DIM)
    generator = save_checkpoint(d / "generator.pt", {
        "config": gen_cfg.to_dict(), "classes": ["action"],
        "proposals": {"dim": 2 * DIM, "streams": list(gen_cfg.data.streams), "state_dict": bmn.state_dict()}})
    return d, config, detector, generator


def _run(argv, capsys):
    capsys.readouterr()
    rc = cli.main([str(a) for a in argv])
    return rc, capsys.readouterr()


def _assert_one_line(rc, err, *phrases):
    lines = err.strip().splitlines()
    assert rc == 2, err
    assert "Traceback" not in err and lines[-1].startswith("dcltal: error:")
    assert sum(line.startswith("dcltal: error:") for line in lines) == 1
    for phrase in phrases:
        assert phrase in lines[-1], f"{phrase!r} not in: {lines[-1]}"


def test_infer_with_a_generator_checkpoint_says_use_propose(data, capsys):
    d, config, detector, generator = data
    rc, cap = _run(["infer", config, "--checkpoint", generator, "--out", d / "x.json"], capsys)
    _assert_one_line(rc, cap.err, str(generator), "proposal generator", "dcltal propose")
    assert not (d / "x.json").exists()
    for flags in (["--cls-from", detector, "--loc-from", generator], ["--cls-from", generator, "--loc-from", detector]):
        rc, cap = _run(["infer", config, *flags, "--out", d / "x.json"], capsys)
        _assert_one_line(rc, cap.err, str(generator), "dcltal propose")


def test_propose_with_a_detector_checkpoint_says_use_infer(data, capsys):
    d, config, detector, _ = data
    rc, cap = _run(["propose", config, "--checkpoint", detector, "--out", d / "p.json"], capsys)
    _assert_one_line(rc, cap.err, str(detector), "detector", "dcltal infer", "model.kind=proposals")
    assert not (d / "p.json").exists()


def test_python_load_and_visualize_refuse_a_generator(data, capsys):
    d, config, _, generator = data
    with pytest.raises(UserError, match="dcltal propose"):
        dcltal.load(generator)
    rc, cap = _run(["visualize", config, "--checkpoint", generator, "--video", "te_1", "--out", d / "viz"], capsys)
    _assert_one_line(rc, cap.err, "proposal generator")


def test_each_kind_runs_where_it_belongs(data, capsys):
    """The checks refuse only the wrong kind: the detector detects, the generator proposes."""
    d, config, detector, generator = data
    rc, cap = _run(["infer", config, "--checkpoint", detector, "--out", d / "dets.json"], capsys)
    assert rc == 0, cap.err
    assert list(json.loads((d / "dets.json").read_text())["results"]) == ["te_1"]
    rc, cap = _run(["propose", config, "--checkpoint", generator, "--out", d / "props.json"], capsys)
    assert rc == 0, cap.err
    assert list(json.loads((d / "props.json").read_text())["results"]) == ["te_1"]
