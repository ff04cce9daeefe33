"""`dcltal train --resume` after a SIGKILL ends with the same weights, bit for bit, as a run never killed."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from dcltal.engine.checkpoint import load_checkpoint
from train_data import tiny_benchmark, tiny_config

EPOCHS = 5


def _command(config, work, *extra):
    return [sys.executable, "-m", "dcltal", "train", str(config), "--work-dir", str(work), *extra]


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


RECIPES = {  # the lineage's SGD with step decay; AdamW with warm-up, cosine decay, clipping and weight averaging
    "sgd_step": {"optimizer": "sgd", "lr": 0.01, "schedule": "step", "lr_steps": [3], "warmup_epochs": 0.0,
                 "clip_grad_norm": 0.0, "ema_decay": 0.0},
    "adamw_cosine_ema": {"optimizer": "adamw", "lr": 0.001, "schedule": "cosine", "warmup_epochs": 1.5,
                         "clip_grad_norm": 1.0, "ema_decay": 0.9},
}


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_resume_after_sigkill_is_bit_identical(tmp_path, recipe):
    synth = tiny_benchmark(tmp_path)
    config = tiny_config(tmp_path, synth, epochs=EPOCHS, **RECIPES[recipe])
    run = subprocess.run(_command(config, tmp_path / "whole"), env=_env(), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]

    work = tmp_path / "killed"
    proc = subprocess.Popen(_command(config, work), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = work / "checkpoints" / "last.pt"
    deadline = time.time() + 240
    while not last.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    killed_at = load_checkpoint(last)["epoch"]
    assert 1 <= killed_at < EPOCHS

    run = subprocess.run(_command(config, work, "--resume"), env=_env(), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    a, b = load_checkpoint(tmp_path / "whole" / "checkpoints" / "last.pt"), load_checkpoint(last)
    assert a["epoch"] == b["epoch"] == EPOCHS
    for stream in ("rgb", "flow"):
        sa, sb = a["streams"][stream]["state_dict"], b["streams"][stream]["state_dict"]
        assert sa.keys() == sb.keys()
        for key in sa:
            assert torch.equal(sa[key], sb[key]), f"{stream} {key} differs after resume"
    for name in ("rgb", "flow"):  # the optimiser's state (momentum buffers, moments) and the raw weights too
        oa, ob = a["training"]["optimizers"][name]["state"], b["training"]["optimizers"][name]["state"]
        assert oa.keys() == ob.keys() and all(torch.equal(oa[k][t], ob[k][t]) for k in oa for t in oa[k])
        ra, rb = a["training"]["averages"][name], b["training"]["averages"][name]
        if recipe.endswith("ema"):
            assert all(torch.equal(ra["trained"][k], rb["trained"][k]) for k in ra["trained"])
            saved = a["streams"][name]["state_dict"]
            assert not all(torch.equal(ra["trained"][k], saved[k]) for k in saved)  # the saved model is the average
        else:
            assert ra is rb is None
    # the metrics of the killed epoch are not duplicated: one row per stream (and fused) per epoch
    rows = (work / "metrics.csv").read_text().splitlines()[1:]
    epochs = sorted(int(r.split(",")[0]) for r in rows)
    assert epochs == sorted(list(range(1, EPOCHS + 1)) * 3)
    assert (tmp_path / "whole" / "metrics.csv").read_text() .count("\n") == len(rows) + 1


def test_resume_without_checkpoint_is_a_user_error(tmp_path):
    synth = tiny_benchmark(tmp_path, videos_train=2, videos_test=1)
    config = tiny_config(tmp_path, synth)
    run = subprocess.run(_command(config, tmp_path / "empty", "--resume"), env=_env(), capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 2
    assert "last.pt" in run.stderr and "Traceback" not in run.stderr
