"""Plots: attention curves against a loop (Eq. 6-7), metrics parsing, and that each figure is a PNG."""
from __future__ import annotations

import math

import numpy as np

from dcltal.viz.attention import attention_curves, plot_attention
from dcltal.viz.curves import plot_training_curves, read_metrics
from dcltal.viz.timeline import plot_timeline

PNG = b"\x89PNG\r\n\x1a\n"


def test_attention_curves_match_a_loop():
    rng = np.random.default_rng(0)
    feats = {"original": rng.normal(size=(20, 5)), "loc": rng.uniform(size=(20, 5))}
    curves = attention_curves(feats, 6, 11, (3, 15))
    for kind, f in feats.items():
        pooled = [max(f[t, d] for t in range(6, 11)) for d in range(5)]
        want = []
        for t in range(3, 15):
            dot = sum(f[t, d] * pooled[d] for d in range(5))
            want.append(dot / math.sqrt(sum(v * v for v in f[t])) / math.sqrt(sum(v * v for v in pooled)))
        np.testing.assert_allclose(curves[kind], want, rtol=1e-5)


def test_read_metrics_splits_by_stream_and_skips_blanks(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("epoch,stream,loss,val_mAP\n1,rgb,2.0,\n1,flow,3.0,0.1\n2,rgb,1.5,0.2\n2,flow,nan,0.3\n")
    x, series = read_metrics(path)
    assert x == "epoch"
    assert series["loss"] == {"rgb": [(1.0, 2.0), (2.0, 1.5)], "flow": [(1.0, 3.0)]}
    assert series["val_mAP"] == {"rgb": [(2.0, 0.2)], "flow": [(1.0, 0.1), (2.0, 0.3)]}


def test_figures_are_written_as_png(tmp_path):
    (tmp_path / "m.csv").write_text("epoch,stream,loss,val_mAP\n1,rgb,2.0,0.1\n2,rgb,1.0,0.3\n")
    plot_training_curves(tmp_path / "m.csv", tmp_path / "curves.png")
    dets = [{"label": "a", "score": 0.9, "segment": [1.0, 3.0]}, {"label": "b", "score": 0.4, "segment": [5.0, 9.0]}]
    plot_timeline(np.array([[1.2, 3.1]]), ["a"], dets, 10.0, tmp_path / "timeline.png")
    times = np.linspace(0, 5, 12)
    plot_attention(times, {"original": np.sin(times), "cls": np.cos(times)}, (1.0, 3.0), tmp_path / "att.png")
    for name in ("curves.png", "timeline.png", "att.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG


def test_visualize_command_writes_the_figures(tmp_path):
    from test_predictor import _checkpoint, _synth_setup

    import test_predictor
    from dcltal.cli import main

    cfg, classes = _synth_setup(tmp_path)
    saved, test_predictor.CLASSES = test_predictor.CLASSES, classes
    try:
        ckpt = _checkpoint(tmp_path / "m.pt")
    finally:
        test_predictor.CLASSES = saved
    out = tmp_path / "figs"
    assert main(["visualize", str(cfg), "--checkpoint", str(ckpt), "--video", "video_test_0000002", "--out", str(out)]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert "timeline.png" in names and "attention_rgb_0.png" in names and "attention_flow_0.png" in names
    assert all((out / n).read_bytes()[:8] == PNG for n in names)
    assert main(["visualize", str(cfg), "--checkpoint", str(ckpt), "--video", "nope", "--out", str(out)]) == 2
