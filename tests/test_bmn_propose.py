"""The generator's training task and `dcltal propose`, end to end on a tiny hand-made data set."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from dcltal.cli import main
from dcltal.config import load_config
from dcltal.data.annotations import load_annotations
from dcltal.data.proposals import load_proposals
from dcltal.engine.proposals.decoding import generate_proposals
from dcltal.engine.proposals.task import ProposalTask
from dcltal.io import atomic_path

SMALL = {"temporal_scale": 16, "max_duration": 6, "snippets_per_location": 2.0, "hidden_1d": 8, "hidden_3d": 8,
         "hidden_2d": 4, "groups": 2, "num_samples": 4, "windows_per_batch": 4, "max_proposals": 20}


@pytest.fixture(autouse=True)
def one_thread():
    """These tensors are tiny: a second thread only adds synchronisation, which stalls badly on a busy
    machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny(tmp_path):
    """Four videos of 60 snippets (8 s at 30 fps, stride 4); actions lift every feature by 2."""
    rng = np.random.default_rng(0)
    feats = tmp_path / "features"
    feats.mkdir()
    database = {}
    for v in range(4):
        x = rng.normal(0, 0.1, (60, 8)).astype(np.float32)
        segments = [[1.0 + v * 0.2, 2.5 + v * 0.2], [4.0, 6.0]]
        centres = (np.arange(60) * 4 + 8) / 30
        for s, e in segments:
            x[(centres >= s) & (centres <= e)] += 2.0
        np.save(feats / f"vid{v}.npy", x)
        database[f"vid{v}"] = {"subset": "Validation" if v < 3 else "Test", "duration": 8.0, "fps": 30.0,
                               "annotations": [{"label": "jump", "segment": s} for s in segments]}
    (tmp_path / "annotations.json").write_text(json.dumps({"version": "t", "database": database}))
    cfg = {"data": {"annotations": str(tmp_path / "annotations.json"), "features": str(feats),
                    "streams": {"rgb": [0, 4], "flow": [4, 8]}},
           "model": {"kind": "proposals"}, "train": {"seed": 0, "val_fraction": 0.34, "device": "cpu"},
           "proposals": SMALL}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return tmp_path, path


def test_task_holds_out_videos_and_learns(tiny):
    _, config = tiny
    cfg = load_config(config)
    task = ProposalTask.from_config(cfg)
    assert len(task.val_videos) == 1 and len(task.windows) > 0
    torch.manual_seed(0)
    model = task.build_model()
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    g = torch.Generator().manual_seed(0)
    first = None
    for _ in range(8):
        for batch in task.batches(g):
            loss = task.losses(model, batch, g)["total"]
            first = loss.item() if first is None else first
            opt.zero_grad()
            loss.backward()
            opt.step()
    assert loss.item() < first
    scores = task.validate(model)
    assert set(scores) >= {"AR@1", "AR@100", "AUC"} and 0 <= scores["AUC"] <= 1
    assert model.training  # validation leaves the model as it found it


def test_generator_videos_honour_avoid_videos_and_feature_cache(tiny):
    """The generator reads its videos through data.videos.load_videos, as the detector does: the
    training videos leave out data.avoid_videos, and data.feature_cache holds them as float16."""
    root, config = tiny
    (root / "avoid.txt").write_text("vid1 some note\n")
    avoided = ProposalTask.from_config(load_config(config, [f"data.avoid_videos={root / 'avoid.txt'}"]))
    plain = ProposalTask.from_config(load_config(config))
    assert "vid1" not in [v.id for v in avoided.val_videos]
    assert 0 < len(avoided.windows) < len(plain.windows)  # one training video fewer
    cached = ProposalTask.from_config(load_config(config, ["data.feature_cache=true"])).windows.features
    assert not torch.equal(plain.windows.features, cached)  # float16 storage rounds the features, as the detector's cache does
    torch.testing.assert_close(plain.windows.features, cached, atol=2e-3, rtol=1e-3)


def test_propose_command_writes_proposal_json(tiny, capsys):
    root, config = tiny
    cfg = load_config(config)
    task = ProposalTask.from_config(cfg)
    model = task.build_model()
    ckpt = root / "gen.pt"
    with atomic_path(ckpt) as tmp:
        torch.save({"format": "dcltal-checkpoint/1", "config": cfg.to_dict(), "classes": ["jump"],
                    "proposals": task.checkpoint_entry(model)}, tmp)
    out = root / "props.json"
    # decoding settings come from the command line, the architecture from the checkpoint
    assert main(["propose", str(config), "--checkpoint", str(ckpt), "--out", str(out),
                 "--set", "proposals.max_proposals=7", "proposals.hidden_1d=99"]) == 0
    ann = load_annotations(root / "annotations.json")
    props = load_proposals(out, {v.id: v for v in ann.in_subset("Test")}, 30.0)
    assert list(props) == ["vid3"] and 0 < len(props["vid3"]) <= 7
    assert (props["vid3"][:, 0] >= 0).all() and (props["vid3"][:, 1] <= 8.0).all()
    # a detector checkpoint (no generator inside) is a user mistake: one line, exit 2
    with atomic_path(root / "det.pt") as tmp:
        torch.save({"format": "dcltal-checkpoint/1", "config": cfg.to_dict(), "classes": ["jump"]}, tmp)
    capsys.readouterr()
    assert main(["propose", str(config), "--checkpoint", str(root / "det.pt"), "--out", str(out)]) == 2
    assert "holds no proposal generator" in capsys.readouterr().err


def test_dcltal_train_with_model_kind_proposals_then_propose(tiny, capsys):
    root, config = tiny
    work = root / "work"
    assert main(["train", str(config), "--work-dir", str(work), "--set", "train.epochs=2", "train.optimizer=adam",
                 "train.lr=0.005"]) == 0
    ckpt = work / "checkpoints" / "last.pt"
    entry = torch.load(ckpt, weights_only=True)["proposals"]
    assert entry["streams"] == ["rgb", "flow"] and entry["dim"] == 8
    out = root / "props.json"
    assert main(["propose", str(config), "--checkpoint", str(ckpt), "--out", str(out), "--subset", "Validation"]) == 0
    assert sorted(json.loads(out.read_text())["results"]) == ["vid0", "vid1", "vid2"]
    # a config that lists the streams in another order reads them in the checkpoint's order
    flipped = yaml.safe_load(config.read_text())
    flipped["data"]["streams"] = {"flow": [4, 8], "rgb": [0, 4]}
    config.write_text(yaml.safe_dump(flipped, sort_keys=False))
    again = root / "again.json"
    assert main(["propose", str(config), "--checkpoint", str(ckpt), "--out", str(again), "--subset", "Validation"]) == 0
    assert json.loads(again.read_text()) == json.loads(out.read_text())
    capsys.readouterr()
    assert main(["propose", str(config), "--checkpoint", str(ckpt), "--out", str(again),
                 "--set", "data.streams={rgb: [0, 4], flow: [4, 6]}"]) == 2
    assert "the checkpoint expects 8" in capsys.readouterr().err


def test_rescale_mode_makes_one_window_a_video(tiny):
    _, config = tiny
    cfg = load_config(config, ["proposals.mode=rescale"])
    task = ProposalTask.from_config(cfg)
    assert len(task) == 2  # three training videos, one held out
    # both instances of each video lie inside its one window: G_C reaches a high tIoU somewhere
    assert (task.windows.iou_map.amax(dim=(1, 2)) > 0.8).all()
    model = task.build_model()
    (props,) = generate_proposals(model, task.val_videos, cfg.proposals).values()
    assert (props[:, 0] >= 0).all() and (props[:, 1] <= 8.0 + 1e-9).all()
