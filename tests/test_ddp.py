"""DDP on CPU (gloo): a two-process `dcltal train` under torchrun, and gradients of a batch split over
two processes equal to one process's gradients on the whole batch (losses reduced per video)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from dcltal.config import load_config
from dcltal.engine.checkpoint import load_checkpoint
from dcltal.engine.distributed import DistContext, gather_videos, shard_videos, shutdown
from train_data import tiny_benchmark, tiny_config

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs gloo")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _task(config_path, videos_per_batch):
    from dcltal.engine.detection.task import detector_tasks

    cfg = load_config(config_path, [f"train.videos_per_batch={videos_per_batch}", "model.dropout=0.0",
                                    "train.val_fraction=0.0"])
    tasks, _, _ = detector_tasks(cfg)
    return tasks["rgb"]


def _gradients(task, model_wrapper, indices):
    torch.manual_seed(0)
    model = task.build_model()
    wrapped = model_wrapper(model)
    (batch,) = list(task.batches(torch.Generator().manual_seed(5), torch.tensor(indices)))
    task.losses(wrapped, batch)["total"].backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _worker(rank, config_path, port, out):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    finished = False
    try:
        task = _task(config_path, 2)
        grads = _gradients(task, torch.nn.parallel.DistributedDataParallel, [2 * rank, 2 * rank + 1])
        # inference helpers: shard five videos by rank, gather the per-video results on rank 0
        ctx = DistContext(rank, 2)
        mine = shard_videos([f"v{i}" for i in range(5)], ctx)
        merged = gather_videos({v: [{"rank": rank}] for v in mine}, ctx)
        if rank == 0:
            torch.save({"grads": grads, "merged": merged}, out)
        else:
            assert merged is None
        finished = True
    finally:
        shutdown(DistContext(rank, 2), finished)


def test_split_batch_gradients_equal_one_process(tmp_path):
    synth = tiny_benchmark(tmp_path, videos_train=4, videos_test=1)
    config = tiny_config(tmp_path, synth)
    out = tmp_path / "grads.pt"
    mp.spawn(_worker, args=(str(config), _free_port(), str(out)), nprocs=2, join=True)
    saved = torch.load(out, weights_only=True)
    split = saved["grads"]
    merged = saved["merged"]
    assert merged == {"v0": [{"rank": 0}], "v1": [{"rank": 0}], "v2": [{"rank": 1}], "v3": [{"rank": 1}],
                      "v4": [{"rank": 1}]}
    assert list(merged) == ["v0", "v1", "v2", "v3", "v4"]  # the whole list's order
    whole = _gradients(_task(config, 4), lambda m: m, [0, 1, 2, 3])
    assert split.keys() == whole.keys() and len(whole) > 10
    for name, g in whole.items():
        torch.testing.assert_close(split[name], g, rtol=1e-4, atol=1e-6, msg=f"gradient of {name}")
    # and a batch of other videos gives other gradients: the comparison can fail
    other = _gradients(_task(config, 2), lambda m: m, [0, 1])
    assert any(not torch.allclose(other[n], whole[n], rtol=1e-3, atol=1e-5) for n in whole)


def test_two_process_train_under_torchrun(tmp_path):
    synth = tiny_benchmark(tmp_path, videos_train=5, videos_test=1)
    config = tiny_config(tmp_path, synth, epochs=2)
    work = tmp_path / "work"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
                          "-m", "dcltal", "train", str(config), "--work-dir", str(work)],
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    ckpt = load_checkpoint(work / "checkpoints" / "last.pt")
    assert ckpt["epoch"] == 2 and set(ckpt["streams"]) == {"rgb", "flow"}
    assert not any(k.startswith("module.") for k in ckpt["streams"]["rgb"]["state_dict"])
    rows = (work / "metrics.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * 3  # rank 0 alone writes: rgb, flow, fused a epoch
    assert run.stdout.count("checkpoint:") == 1  # rank 0 reports
    log = (work / "train.log").read_text()  # rank 0 alone keeps the record
    assert log.count("dcltal train into") == 1 and "2 processes" in log and log.count("epoch 2 fused: ") == 1
    assert (work / "config.yaml").is_file()
