"""`dcltal train` on tiny synthetic data: checkpoint layout, validation choosing best.pt, metrics,
schedule, determinism, the proposal generator through the same loop, and user mistakes."""
from __future__ import annotations

import csv
import math

import pytest
import torch

from dcltal.cli import main
from dcltal.config import TrainConfig, load_config
from dcltal.engine.checkpoint import FORMAT, load_checkpoint
from dcltal.engine.detection.task import detector_tasks, validate_detectors
from dcltal.engine.detection.predictor import Predictor
from dcltal.engine.schedule import epoch_seed, lr_at
from dcltal.engine.trainer import train
from dcltal.errors import UserError
from dcltal.engine.detection.video_classifier import stream_probabilities, train_video_classifier
from train_data import tiny_benchmark, tiny_config


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    return root, tiny_benchmark(root)


@pytest.fixture(scope="module")
def trained(bench):
    root, synth = bench
    config = tiny_config(root, synth, epochs=4, optimizer="sgd", lr=0.01, schedule="step", warmup_epochs=0.0,
                         lr_steps=[2], lr_gamma=0.5)
    cfg = load_config(config)
    torch.set_num_threads(1)
    return cfg, train(cfg, root / "work", progress=False), root / "work"


def _rows(work):
    with open(work / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_checkpoint_layout(trained):
    cfg, chosen, work = trained
    last = load_checkpoint(work / "checkpoints" / "last.pt")
    assert last["format"] == FORMAT and last["epoch"] == 4
    assert last["classes"] == (cfg.data.classes and open(cfg.data.classes).read().split())
    assert last["config"] == cfg.to_dict()
    assert set(last["streams"]) == {"rgb", "flow"} and all(e["dim"] == 8 for e in last["streams"].values())
    assert set(last["coder"]) == {"kind", "mean", "std"} and last["coder"]["kind"] == "agnostic"
    assert min(last["coder"]["std"]) > 0 and last["video_classifier"] is None
    assert set(last["training"]) >= {"optimizers", "scalers", "rng", "best_score", "best_epoch"}
    best = load_checkpoint(work / "checkpoints" / "best.pt")
    assert "training" not in best and chosen == work / "checkpoints" / "best.pt"


def test_best_is_the_epoch_of_highest_fused_validation_map(trained):
    _, _, work = trained
    fused = [r for r in _rows(work) if r["stream"] == "fused"]
    assert [int(r["epoch"]) for r in fused] == [1, 2, 3, 4]
    maps = [float(r["val_mAP"]) for r in fused]
    best = load_checkpoint(work / "checkpoints" / "best.pt")
    assert best["epoch"] == 1 + maps.index(max(maps))
    assert best["best_score"] == pytest.approx(max(maps), abs=1e-5)
    if best["epoch"] != 4:  # best.pt holds that epoch's weights, not the last ones
        last = load_checkpoint(work / "checkpoints" / "last.pt")
        assert any(not torch.equal(a, last["streams"]["rgb"]["state_dict"][k])
                   for k, a in best["streams"]["rgb"]["state_dict"].items())


def test_metrics_schedule_and_tensorboard(trained):
    cfg, _, work = trained
    rows = _rows(work)
    rgb = [r for r in rows if r["stream"] == "rgb"]
    assert [float(r["lr"]) for r in rgb] == [lr_at(e, cfg.train) for e in range(4)] == [0.01, 0.01, 0.005, 0.005]
    for key in ("total", "cls", "reg", "com", "rec", "val_mAP", "val_mAP@0.5"):
        assert all(r[key] != "" for r in rgb), key
    assert float(rgb[-1]["total"]) < float(rgb[0]["total"])  # it learns
    assert list((work / "tensorboard").glob("events.out.tfevents.*"))


def test_predictor_loads_the_checkpoint(trained):
    from dcltal.data.videos import load_videos
    from dcltal.engine.detection.predictor import Predictor

    cfg, chosen, _ = trained
    predictor = Predictor.from_checkpoint(chosen, "cpu")
    video = load_videos(cfg.data, cfg.data.test_subset, avoid=False, classes=predictor.classes)[0]
    dets = predictor.predict(video.features, video.proposals, duration=video.duration, video_scores=None)
    assert dets and all(d["label"] in predictor.classes and 0 <= d["segment"][0] <= d["segment"][1] for d in dets)


def test_same_seed_same_weights(bench):
    root, synth = bench
    cfg = load_config(tiny_config(root, synth, epochs=1, val_fraction=0.0))
    a = load_checkpoint(train(cfg, root / "a", progress=False))
    b = load_checkpoint(train(cfg, root / "b", progress=False))
    assert not (root / "a" / "checkpoints" / "best.pt").exists()  # nothing held out: last.pt is the result
    for k, t in a["streams"]["flow"]["state_dict"].items():
        assert torch.equal(t, b["streams"]["flow"]["state_dict"][k])


def test_builtin_video_classifier_is_stored(bench):
    root, synth = bench
    config = tiny_config(root, synth, epochs=1)
    cfg = load_config(config, ["infer.video_scores=builtin", "data.train_subset=Validation"])
    chosen = train(cfg, root / "vc", progress=False)
    for path in (chosen, root / "vc" / "checkpoints" / "last.pt"):
        vc = load_checkpoint(path)["video_classifier"]
        assert set(vc) == {"rgb", "flow"} and all(isinstance(t, torch.Tensor) for t in vc["rgb"].values())


def test_validation_multiplies_in_the_builtin_video_scores(bench):
    """best.pt is chosen by the inference the test split will get: the held-out videos' detections
    with the stored classifier's video-level scores, which was trained without them."""
    root, synth = bench
    cfg = load_config(tiny_config(root, synth, epochs=1), ["infer.video_scores=builtin", "data.train_subset=Validation"])
    work = root / "vc_val"
    train(cfg, work, progress=False)
    tasks, _, coder = detector_tasks(cfg)
    task = next(iter(tasks.values()))
    assert len(task.val) and not {v.id for v in task.val} & {v.id for v in task.train}
    own = train_video_classifier([v.features for v in task.train], [v.labels for v in task.train],
                                 len(task.classes), seed=cfg.train.seed, progress=False)
    stored = load_checkpoint(work / "checkpoints" / "last.pt")["video_classifier"]
    assert all(torch.equal(own[s][k], stored[s][k]) for s in own for k in own[s])
    predictor = Predictor.from_checkpoint(work / "checkpoints" / "last.pt")
    probs = {v.id: stream_probabilities(predictor.video_classifiers, v.features) for v in task.val}
    fused = [r for r in _rows(work) if r["stream"] == "fused"][-1]
    assert float(fused["val_mAP"]) == pytest.approx(
        validate_detectors(predictor.models, task.val, coder, cfg, probs)["mAP"], abs=1e-6)
    # infer.stream_weights: held_out (the default): validation's choice is the checkpoint's, and inference's
    chosen = {s: float(fused[f"val_weight_{s}"]) for s in ("rgb", "flow")}
    assert load_checkpoint(work / "checkpoints" / "last.pt")["stream_weights"] == chosen
    assert predictor.infer_settings(cfg.infer).stream_weights == chosen
    fixed = load_config(tiny_config(root, synth, epochs=1), ["infer.stream_weights={rgb: 5, flow: 6}"])
    assert predictor.infer_settings(fixed.infer).stream_weights == {"rgb": 5.0, "flow": 6.0}
    # and the command line detects with them: the same detections as the chosen weights given by hand
    sets = ["infer.video_scores=builtin", "data.train_subset=Validation"]
    config, last = str(tiny_config(root, synth, epochs=1)), str(work / "checkpoints" / "last.pt")
    assert main(["infer", config, "--checkpoint", last, "--out", str(root / "held.json"), "--quiet", "--set", *sets]) == 0
    given = f"infer.stream_weights={{rgb: {chosen['rgb']}, flow: {chosen['flow']}}}"
    assert main(["infer", config, "--checkpoint", last, "--out", str(root / "given.json"), "--quiet", "--set", *sets,
                 given]) == 0
    assert (root / "held.json").read_text() == (root / "given.json").read_text()


def test_proposal_generator_trains_through_the_loop(bench):
    root, synth = bench
    small = ["model.kind=proposals", "proposals.temporal_scale=16", "proposals.max_duration=6",
             "proposals.hidden_1d=8", "proposals.hidden_3d=8", "proposals.hidden_2d=4", "proposals.groups=2",
             "proposals.num_samples=4", "proposals.max_proposals=10", "train.optimizer=adam", "train.lr=0.001"]
    cfg = load_config(tiny_config(root, synth, epochs=1), small)
    chosen = train(cfg, root / "gen", progress=False)
    ckpt = load_checkpoint(chosen)
    assert "proposals" in ckpt and "state_dict" in ckpt["proposals"] and "streams" not in ckpt
    assert [r["stream"] for r in _rows(root / "gen")] == ["proposals"]


def test_schedule_and_seeds():
    tc = TrainConfig(lr=0.1, schedule="step", warmup_epochs=0.0, lr_gamma=0.1, lr_steps=[2, 4])
    assert [round(lr_at(e, tc), 12) for e in range(6)] == [0.1, 0.1, 0.01, 0.01, 0.001, 0.001]
    assert lr_at(1.99, tc) == 0.1  # a step takes effect at its epoch's first batch
    cosine = TrainConfig(lr=0.1, schedule="cosine", epochs=10, warmup_epochs=2)
    assert lr_at(0, cosine) == 0.0 and lr_at(1, cosine) == pytest.approx(0.05 * 0.5 * (1 + math.cos(math.pi / 10)))
    assert lr_at(5, cosine) == pytest.approx(0.05) and lr_at(10, cosine) == pytest.approx(0.0, abs=1e-12)
    assert all(lr_at(e / 4, cosine) <= 0.1 for e in range(41))
    seeds = {epoch_seed(0, e, s, r) for e in range(-1, 3) for s in ("rgb", "flow") for r in (0, 1)}
    assert len(seeds) == 16 and epoch_seed(0, 1, "rgb") == epoch_seed(0, 1, "rgb") < 2**63


def test_user_mistakes(bench, capsys):
    root, synth = bench
    config = tiny_config(root, synth)
    assert main(["train", str(config), "--work-dir", str(root / "x"), "--set", "data.proposals=null"]) == 2
    assert "data.proposals" in capsys.readouterr().err
    assert main(["train", str(config), "--work-dir", str(root / "x"), "--set", "train.epoch=3"]) == 2
    assert "train.epoch" in capsys.readouterr().err
    assert main(["train", str(config), "--work-dir", str(root / "x"), "--set", f"data.features={root}/none"]) == 2
    assert "features" in capsys.readouterr().err
    assert main(["train", str(config), "--work-dir", str(root / "x"), "--set", "train.epochs=0"]) == 2
    assert "train.epochs" in capsys.readouterr().err


def test_a_step_under_autocast(bench):
    """The CUDA path runs the forward and losses under float16 autocast; on CPU, bfloat16 autocast
    exercises the same mixed-dtype code (no GPU here): finite losses, float32 gradients."""
    from dcltal.engine.detection.task import detector_tasks

    root, synth = bench
    tasks, _, _ = detector_tasks(load_config(tiny_config(root, synth)))
    task = tasks["flow"]
    torch.manual_seed(0)
    model = task.build_model()
    batch = next(iter(task.batches(torch.Generator().manual_seed(0))))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        losses = task.losses(model, batch)
    losses["total"].backward()
    assert all(torch.isfinite(v) for v in losses.values())
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)


def test_resume_without_a_checkpoint_fails_before_any_training(bench, monkeypatch):
    """--resume checks last.pt before the video-level classifier is trained (which takes minutes)."""
    from dcltal.engine.detection import video_classifier

    root, synth = bench
    cfg = load_config(tiny_config(root, synth, epochs=1), ["infer.video_scores=builtin"])

    def never(*args, **kwargs):
        raise AssertionError("the classifier was trained before --resume was checked")

    monkeypatch.setattr(video_classifier, "train_video_classifier", never)
    with pytest.raises(UserError, match="--resume: no checkpoint"):
        train(cfg, root / "empty_work", resume=True, progress=False)
