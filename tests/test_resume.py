"""`dcltal train --resume` after a SIGKILL ends with the same weights, bit for bit, as a run never killed."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import torch

from dcltal.engine.checkpoint import load_checkpoint
from train_data import tiny_benchmark, tiny_config

EPOCHS = 5


def _command(config, work, *extra):
    return [sys.executable, "-m", "dcltal", "train", str(config), "--work-dir", str(work), *extra]


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def test_resume_after_sigkill_is_bit_identical(tmp_path):
    synth = tiny_benchmark(tmp_path)
    config = tiny_config(tmp_path, synth, epochs=EPOCHS, lr_steps=[3])
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
    for name in ("rgb", "flow"):  # momentum buffers too
        oa, ob = a["training"]["optimizers"][name]["state"], b["training"]["optimizers"][name]["state"]
        assert all(torch.equal(oa[k]["momentum_buffer"], ob[k]["momentum_buffer"]) for k in oa)
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
