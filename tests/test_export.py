"""dcltal export: a released model directory, loaded wherever a checkpoint is; checkpoint migration."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import dcltal
from dcltal.cli import main
from dcltal.engine import checkpoint
from dcltal.errors import UserError

# written by `dcltal train` of this release (synthetic data, dim 8 a stream, 3 classes, 2 epochs); kept
# as it is so that later releases prove they still load this release's checkpoints
FIXTURE = Path(__file__).parent / "fixtures" / "tiny_detector.pt"
CONFIG = Path(__file__).parents[1] / "configs" / "synth.yaml"


def _video(seed=0, t=60, n=40):
    rng = np.random.default_rng(seed)
    start = rng.uniform(0, 6, n)
    return (np.abs(rng.normal(size=(t, 16))).astype(np.float32),
            np.stack([start, start + rng.uniform(0.3, 2.5, n), rng.uniform(size=n)], 1))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    d = tmp_path_factory.mktemp("export")
    assert main(["export", str(FIXTURE), "--out", str(d / "model")]) == 0
    return d


def test_a_checkpoint_of_this_release_loads_and_predicts():
    model = dcltal.load(FIXTURE)
    dets = model.predict(*_video())
    assert dets and {d["label"] for d in dets} <= {"pair0_a", "pair0_b", "solo1"}
    assert model.video_classifiers  # the built-in video-level classifier came along


def test_the_directory_holds_weights_config_and_classes(exported):
    model = exported / "model"
    assert sorted(p.name for p in model.iterdir()) == ["classes.txt", "config.yaml", "model.safetensors"]
    assert (model / "classes.txt").read_text() == "pair0_a\npair0_b\nsolo1\n"
    config = yaml.safe_load((model / "config.yaml").read_text())
    assert set(config) == {"data", "model", "infer"}  # no training settings
    assert set(config["data"]) == {"streams", "fps", "feature_stride", "feature_window"}  # no data paths
    from safetensors import safe_open

    with safe_open(model / "model.safetensors", framework="pt") as f:
        names = list(f.keys())
    assert any(n.startswith("streams/rgb/") for n in names) and any(n.startswith("streams/flow/") for n in names)
    assert any(n.startswith("video_classifier/") for n in names)


def test_load_from_the_directory_predicts_as_the_checkpoint(exported):
    feats, props = _video(3)
    assert dcltal.load(exported / "model").predict(feats, props) == dcltal.load(FIXTURE).predict(feats, props)


def test_infer_from_the_directory_equals_infer_from_the_checkpoint(exported):
    d = exported
    assert main(["synth", str(d / "syn"), "--videos-train", "1", "--videos-test", "2", "--classes", "3",
                 "--dim", "8", "--seed", "1"]) == 0
    sets = [f"data.annotations={d / 'syn' / 'annotations.json'}", f"data.features={d / 'syn' / 'features'}",
            f"data.proposals={d / 'syn' / 'proposals'}", f"data.classes={d / 'syn' / 'classes.txt'}",
            "data.streams={rgb: [0, 8], flow: [8, 16]}"]
    for ckpt, out in ((FIXTURE, "from_pt.json"), (d / "model", "from_dir.json")):
        assert main(["infer", str(CONFIG), "--checkpoint", str(ckpt), "--out", str(d / out), "--set", *sets]) == 0
    from_pt, from_dir = (json.loads((d / f).read_text()) for f in ("from_pt.json", "from_dir.json"))
    assert from_pt["results"] and from_pt == from_dir


@pytest.mark.parametrize("missing", ["model.safetensors", "config.yaml", "classes.txt"])
def test_a_directory_missing_a_file_is_a_one_line_mistake(exported, tmp_path, capsys, missing):
    broken = tmp_path / "model"
    broken.mkdir()
    for f in (exported / "model").iterdir():
        if f.name != missing:
            (broken / f.name).write_bytes(f.read_bytes())
    rc = main(["infer", str(CONFIG), "--checkpoint", str(broken), "--out", str(tmp_path / "r.json")])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and missing in err and "dcltal export" in err


def test_a_corrupt_weights_file_is_a_mistake(exported, tmp_path):
    broken = tmp_path / "model"
    broken.mkdir()
    for f in (exported / "model").iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(UserError, match="is not a model file written by dcltal export"):
        dcltal.load(broken)


def test_export_refuses_writing_over_its_input(exported, capsys):
    assert main(["export", str(exported / "model"), "--out", str(exported / "model")]) == 2
    assert "would overwrite the checkpoint" in capsys.readouterr().err


def test_older_checkpoints_are_migrated(tmp_path, monkeypatch):
    """A checkpoint without format_version is version 1; config keys renamed later are mapped."""
    ckpt = torch.load(FIXTURE, weights_only=True)
    del ckpt["format_version"]
    ckpt["config"]["model"]["hidden"] = ckpt["config"]["model"].pop("hidden_dim")  # as if it had an old name
    ckpt["config"]["train"]["retired_key"] = 1
    torch.save(ckpt, tmp_path / "old.pt")
    with pytest.raises(UserError, match="unknown|hidden"):  # without the renames it does not load
        dcltal.load(tmp_path / "old.pt")
    monkeypatch.setattr(checkpoint, "CONFIG_RENAMES", {"model.hidden": "model.hidden_dim", "train.retired_key": None})
    feats, props = _video(5)
    assert dcltal.load(tmp_path / "old.pt").predict(feats, props) == dcltal.load(FIXTURE).predict(feats, props)
    assert checkpoint.load_checkpoint(tmp_path / "old.pt")["format_version"] == checkpoint.FORMAT_VERSION


def test_a_checkpoint_with_best_map_loads_with_best_score(tmp_path):
    """Checkpoints written before the neutral key (``best_map``) load, and predict, as before."""
    ckpt = torch.load(FIXTURE, weights_only=True)
    ckpt.pop("best_score", None)
    torch.save({**ckpt, "best_map": 0.25}, tmp_path / "old.pt")
    loaded = checkpoint.load_checkpoint(tmp_path / "old.pt")
    assert loaded["best_score"] == 0.25 and "best_map" not in loaded
    feats, props = _video(5)
    assert dcltal.load(tmp_path / "old.pt").predict(feats, props) == dcltal.load(FIXTURE).predict(feats, props)


def test_migration_steps_run_in_order_and_newer_versions_are_refused(tmp_path, monkeypatch):
    ckpt = torch.load(FIXTURE, weights_only=True)
    monkeypatch.setattr(checkpoint, "FORMAT_VERSION", 3)
    monkeypatch.setattr(checkpoint, "MIGRATIONS", [lambda c: {**c, "steps": c.get("steps", "") + "1"},
                                                   lambda c: {**c, "steps": c.get("steps", "") + "2"}])
    for version, steps in ((1, "12"), (2, "2"), (3, None)):
        torch.save({**ckpt, "format_version": version}, tmp_path / "c.pt")
        assert checkpoint.load_checkpoint(tmp_path / "c.pt").get("steps") == steps
    torch.save({**ckpt, "format_version": 4}, tmp_path / "c.pt")
    with pytest.raises(UserError, match="format version 4; .*upgrade dcltal"):
        checkpoint.load_checkpoint(tmp_path / "c.pt")


def test_an_edited_directory_that_no_longer_fits_its_weights_is_a_mistake(exported, tmp_path):
    edited = tmp_path / "model"
    edited.mkdir()
    for f in (exported / "model").iterdir():
        (edited / f.name).write_bytes(f.read_bytes())
    with open(edited / "classes.txt", "a") as f:
        f.write("a_fourth_class\n")
    with pytest.raises(UserError, match="rgb weights do not fit the model its config and 4 classes describe"):
        dcltal.load(edited)


def test_the_stream_weights_validation_chose_travel_with_the_model(tmp_path):
    """infer.stream_weights: held_out reads the checkpoint's stream_weights; an exported model keeps them."""
    ckpt = checkpoint.load_checkpoint(FIXTURE)
    ckpt["stream_weights"] = {"rgb": 0.3, "flow": 0.7}
    checkpoint.save_checkpoint(tmp_path / "chosen.pt", ckpt)
    assert main(["export", str(tmp_path / "chosen.pt"), "--out", str(tmp_path / "model")]) == 0
    for source in (tmp_path / "chosen.pt", tmp_path / "model"):
        model = dcltal.load(source)
        assert model.held_out_weights == {"rgb": 0.3, "flow": 0.7}
        held_out = dataclasses.replace(model.cfg.infer, stream_weights="held_out")
        assert model.infer_settings(held_out).stream_weights == {"rgb": 0.3, "flow": 0.7}
