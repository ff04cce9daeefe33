"""Issue 16, item 2 and the rest of 3-4, from the command line: no command writes over one of its
inputs; train refuses a work dir holding another run (finished, or running: the lock); ablate
refuses runs trained with other settings; a full disk while training, a non-finite loss and a
damaged checkpoint are one line each, and the last good checkpoint stays. The data and helpers are
test_bad_input's.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys

import pytest

from test_bad_input import _assert_mistake, _run, data, trained  # noqa: F401
from faults import file_size_limit, flip_tensor_bit
from test_bad_input_values import _official

ANY_CKPT = b"not read: the output is refused before the checkpoint is"


def _copy(src, dst):
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    return dst


def _infer_onto(d, victim, *sets, out=None):
    return ["infer", d / "config.yaml", "--checkpoint", d / "cases" / "some.pt", "--out", out or victim, "--quiet",
            *(["--set", *sets] if sets else [])]


OUT_IS_INPUT = {  # name: d -> (argv, the input that must survive, words of the error)
    "infer --out the annotations": lambda d: (lambda gt: (
        _infer_onto(d, gt, f"data.annotations={gt}"), gt, ["--out", "data.annotations"]))(
        _copy(d / "annotations.json", d / "cases" / "oi" / "gt.json")),
    "infer --out the checkpoint": lambda d: (
        ["infer", d / "config.yaml", "--checkpoint", d / "cases" / "some.pt", "--out", d / "cases" / "some.pt"],
        d / "cases" / "some.pt", ["--checkpoint"]),
    "infer --out a feature file": lambda d: (
        _infer_onto(d, d / "features" / "te_1.npy"), d / "features" / "te_1.npy", ["data.features"]),
    "infer --out a link to the annotations": lambda d: (lambda gt: (
        _infer_onto(d, gt, f"data.annotations={gt}", out=_link(gt, d / "cases" / "oi" / "link.json")), gt,
        ["link.json", "data.annotations"]))(_copy(d / "annotations.json", d / "cases" / "oi" / "gt2.json")),
    "eval --json the ground truth": lambda d: (lambda gt: (
        ["eval", "--gt", gt, "--pred", d / "results.json", "--subset", "Test", "--json", gt], gt, ["--gt"]))(
        _copy(d / "annotations.json", d / "cases" / "oi" / "gt3.json")),
    "eval --json the results": lambda d: (lambda pred: (
        ["eval", "--gt", d / "annotations.json", "--pred", pred, "--subset", "Test", "--json", pred], pred,
        ["--pred"]))(_copy(d / "results.json", d / "cases" / "oi" / "pred.json")),
    "eval-proposals --json the proposals": lambda d: (lambda p: (
        ["eval-proposals", "--gt", d / "annotations.json", "--proposals", p, "--subset", "Test", "--json", p], p,
        ["--proposals"]))(_copy(d / "results.json", d / "cases" / "oi" / "props.json")),
    "convert --out one of its inputs": lambda d: (lambda folder: (
        ["convert", "thumos14", folder, "--out", folder / "Jump_test.txt"], folder / "Jump_test.txt",
        ["Jump_test.txt", "ANNOTATION_DIR"]))(_official(d, "oi_convert")),
    "propose --out the config": lambda d: (lambda cfg: (
        ["propose", cfg, "--checkpoint", d / "cases" / "some.pt", "--out", cfg, "--quiet"], cfg, ["CONFIG"]))(
        _copy(d / "config.yaml", d / "cases" / "oi" / "cfg.json")),
    "export --out the model directory it reads": lambda d: (lambda model: (
        ["export", model, "--out", model], model / "classes.txt", ["the checkpoint"]))(_model_dir(d)),
    "visualize --out the feature folder": lambda d: (
        ["visualize", d / "config.yaml", "--checkpoint", d / "cases" / "some.pt", "--video", "te_1",
         "--out", d / "features"], d / "features" / "te_1.npy", ["data.features"]),
    "train --work-dir inside the feature folder": lambda d: (
        ["train", d / "config.yaml", "--work-dir", d / "features" / "w"], d / "features" / "te_1.npy",
        ["data.features"]),
}


def _link(target, link):
    if not link.exists():
        os.symlink(target, link)
    return link


def _model_dir(d):
    model = d / "cases" / "oi_model"
    model.mkdir(parents=True, exist_ok=True)
    for name in ("model.safetensors", "config.yaml", "classes.txt"):
        (model / name).write_text(name)
    return model


@pytest.mark.parametrize("case", list(OUT_IS_INPUT))
def test_output_that_is_an_input_is_refused_and_the_input_kept(data, capsys, case):
    (data / "cases").mkdir(exist_ok=True)
    (data / "cases" / "some.pt").write_bytes(ANY_CKPT)
    argv, victim, words = OUT_IS_INPUT[case](data)
    before = victim.read_bytes()
    rc, _, err = _run(argv, capsys)
    _assert_mistake(rc, err, *words)
    assert victim.read_bytes() == before


def test_visualize_instances_must_be_positive(data, capsys):
    rc, _, err = _run(["visualize", data / "config.yaml", "--checkpoint", data / "cases" / "some.pt", "--video",
                       "te_1", "--out", data / "cases" / "viz_neg", "--instances", "-1"], capsys)
    _assert_mistake(rc, err, "--instances", "-1")


# ---------------------------------------------------------------- train: the work dir


@pytest.fixture(scope="module")
def finished(data):
    """A finished one-epoch run: (work dir, its last.pt bytes)."""
    work = data / "cases" / "w_finished"
    rc = subprocess.run([sys.executable, "-m", "dcltal", "train", data / "config.yaml", "--work-dir", work, "--quiet"],
                        env={**os.environ, "PYTHONWARNINGS": "ignore"}).returncode
    assert rc == 0
    return work, (work / "checkpoints" / "last.pt").read_bytes()


def _copy_run(finished, into):
    work = shutil.copytree(finished[0], into)
    return work, work / "checkpoints" / "last.pt"


def test_train_into_a_finished_run_is_refused_without_resume_or_overwrite(data, finished, capsys):
    work, last = _copy_run(finished, data / "cases" / "w_again")
    rc, _, err = _run(["train", data / "config.yaml", "--work-dir", work, "--quiet"], capsys)
    _assert_mistake(rc, err, str(work), "--resume", "--overwrite")
    assert last.read_bytes() == finished[1]
    rc, _, err = _run(["train", data / "config.yaml", "--work-dir", work, "--resume", "--overwrite"], capsys)
    _assert_mistake(rc, err, "--overwrite", "--resume")
    rc, _, err = _run(["train", data / "config.yaml", "--work-dir", work, "--quiet", "--overwrite",
                       "--set", "train.seed=1"], capsys)
    assert rc == 0, err
    assert last.read_bytes() != finished[1]  # another seed: the run was replaced
    assert not (work / "train.lock").exists()


def test_train_into_a_work_dir_locked_by_a_live_run_is_refused(data, capsys):
    work = data / "cases" / "w_locked"
    work.mkdir(parents=True)
    holder = f"{os.getpid()} {socket.gethostname()}\n"  # this process: alive
    (work / "train.lock").write_text(holder)
    rc, _, err = _run(["train", data / "config.yaml", "--work-dir", work, "--quiet"], capsys)
    _assert_mistake(rc, err, "train.lock", str(os.getpid()), "in use")
    assert (work / "train.lock").read_text() == holder  # not ours to remove
    assert not (work / "checkpoints").exists()


def test_a_stale_lock_is_taken_over_with_a_warning_and_released(data, capsys):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    work = data / "cases" / "w_stale"
    work.mkdir(parents=True)
    (work / "train.lock").write_text(f"{dead.pid} {socket.gethostname()}\n")
    rc, _, err = _run(["train", data / "config.yaml", "--work-dir", work, "--quiet"], capsys)
    assert rc == 0, err
    assert [line for line in err.splitlines() if line.startswith("warning") and "taken over" in line
            and str(dead.pid) in line]
    assert not (work / "train.lock").exists()
    assert (work / "checkpoints" / "last.pt").is_file()


def test_the_lock_is_released_when_training_fails(data, capsys):
    work = data / "cases" / "w_fails"
    rc, _, err = _run(["train", data / "config.yaml", "--work-dir", work, "--quiet", "--set",
                       f"data.features={data / 'no_features'}"], capsys)
    _assert_mistake(rc, err, "no_features")
    assert work.is_dir() and not (work / "train.lock").exists()


def _all_finite(obj) -> bool:
    import torch

    if isinstance(obj, torch.Tensor):
        return not obj.is_floating_point() or bool(torch.isfinite(obj).all())
    if isinstance(obj, dict):
        return all(_all_finite(v) for v in obj.values())
    return True


def test_non_finite_loss_stops_training_and_keeps_the_last_good_checkpoint(data, finished, capsys):
    """lr 1e30: the weights explode within an epoch or two; the first NaN loss stops the run, and
    last.pt stays the epoch before it, every weight finite."""
    from dcltal.engine.checkpoint import load_checkpoint

    work, last = _copy_run(finished, data / "cases" / "w_nan")
    rc, _, err = _run(["train", data / "config.yaml", "--work-dir", work, "--quiet", "--resume", "--set",
                       "train.epochs=6", "train.lr=1.0e+30", "train.warmup_epochs=0"], capsys)
    _assert_mistake(rc, err, "training stopped", "loss is nan at epoch", "train.lr")
    stopped_at = int(err.split("at epoch ")[1].split(",")[0])
    for found in (work / "checkpoints").glob("*.pt"):  # last.pt; best.pt where validation chose one
        ckpt = load_checkpoint(found)
        assert _all_finite({k: v for k, v in ckpt.items() if k != "training"}), found
    assert load_checkpoint(last)["epoch"] == stopped_at - 1


def test_full_disk_while_training_is_one_line_and_keeps_the_old_checkpoint(data, finished):
    work, last = _copy_run(finished, data / "cases" / "w_full")
    proc = subprocess.run([sys.executable, "-m", "dcltal", "train", data / "config.yaml", "--work-dir", work,
                           "--quiet", "--resume", "--set", "train.epochs=2"],
                          capture_output=True, text=True, preexec_fn=file_size_limit(len(finished[1]) // 2),
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert "checkpoints" in proc.stderr and "File too large" in proc.stderr
    assert last.read_bytes() == finished[1]
    assert not list(last.parent.glob(".*.tmp"))


# ---------------------------------------------------------------- checksums


def test_a_bit_flipped_checkpoint_is_one_line_naming_it(data, finished, capsys):
    damaged = flip_tensor_bit(finished[0] / "checkpoints" / "last.pt", data / "cases" / "flipped.pt")
    rc, _, err = _run(["infer", data / "config.yaml", "--checkpoint", damaged, "--out", data / "cases" / "f.json"],
                      capsys)
    _assert_mistake(rc, err, "flipped.pt", "damaged")
    assert not (data / "cases" / "f.json").exists()


def test_checkpoints_without_a_checksum_still_load(data, finished, tmp_path):
    import torch

    from dcltal.engine.checkpoint import load_checkpoint

    ckpt = torch.load(finished[0] / "checkpoints" / "last.pt", weights_only=True)
    assert "tensor_sha256" in ckpt
    del ckpt["tensor_sha256"]  # as releases before the checksum wrote them
    torch.save(ckpt, tmp_path / "old.pt")
    assert load_checkpoint(tmp_path / "old.pt")["epoch"] == 1


def test_a_damaged_model_directory_is_one_line_naming_it(data, finished, capsys, tmp_path):
    from safetensors.torch import load_file, save_file
    from safetensors import safe_open

    model = tmp_path / "model"
    rc, _, err = _run(["export", finished[0] / "checkpoints" / "last.pt", "--out", model], capsys)
    assert rc == 0, err
    weights = model / "model.safetensors"
    with safe_open(weights, framework="pt") as f:
        metadata = f.metadata()
    tensors = load_file(weights)
    name = max(tensors, key=lambda k: tensors[k].numel())
    tensors[name].view(-1)[0] += 1.0  # a changed weight under the old checksum
    save_file(tensors, str(weights), metadata=metadata)
    rc, _, err = _run(["infer", data / "config.yaml", "--checkpoint", model, "--out", tmp_path / "r.json"], capsys)
    _assert_mistake(rc, err, str(model), "damaged")


# ---------------------------------------------------------------- ablate


def test_ablate_refuses_runs_trained_with_other_settings(data, capsys):
    out = data / "cases" / "study"
    argv = ["ablate", data / "config.yaml", "--out", out, "--variants", "dnet"]
    rc, _, err = _run(argv, capsys)
    assert rc == 0, err
    rc, _, err = _run(argv, capsys)  # the same settings: the finished runs are reused
    assert rc == 0, err
    rc, _, err = _run(argv + ["--set", "model.hidden_dim=4"], capsys)
    _assert_mistake(rc, err, "model.hidden_dim", "--out")
    # held_out validation writes the weights into the runs and picks their best.pt: another setting, too
    rc, _, err = _run(argv + ["--set", "infer.stream_weights={rgb: 1, flow: 1}"], capsys)
    _assert_mistake(rc, err, "infer.stream_weights", "--out")
    assert json.loads((out / "ablations.json").read_text())
