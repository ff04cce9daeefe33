"""`dcltal infer` and `dcltal propose` under torchrun: two gloo processes write the file that one
process writes, and a mistake that only one process meets stops both with one error line."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.distributed as dist

from dcltal.cli import main
from dcltal.config import load_config
from dcltal.data.annotations import load_annotations
from dcltal.engine.checkpoint import save_checkpoint
from dcltal.engine.distributed import DistContext, shard_videos
from dcltal.engine.proposals.task import checkpoint_entry
from dcltal.model.bmn import BMN
from dcltal.model.detector import Detector
from train_data import DIM, tiny_benchmark, tiny_config

pytestmark = pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs gloo")

SMALL = ["proposals.temporal_scale=16", "proposals.max_duration=6", "proposals.hidden_1d=8", "proposals.hidden_3d=8",
         "proposals.hidden_2d=4", "proposals.groups=2", "proposals.num_samples=4", "proposals.max_proposals=20"]


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    """Five test videos (rank 0 takes the first two, rank 1 the last three), an untrained detector
    and proposal generator: what they detect does not matter, only that every process agrees."""
    root = tmp_path_factory.mktemp("ddp_infer")
    synth = tiny_benchmark(root, videos_train=2, videos_test=5)
    config = tiny_config(root, synth)
    cfg = load_config(config)
    classes = load_annotations(synth / "annotations.json", synth / "classes.txt").classes
    torch.manual_seed(0)
    streams = {s: {"dim": DIM, "state_dict": Detector.from_config(cfg.model, DIM, len(classes)).state_dict()}
               for s in cfg.data.streams}
    save_checkpoint(root / "det.pt", {"config": cfg.to_dict(), "classes": classes, "streams": streams,
                                      "coder": {"kind": "agnostic", "mean": [0.0, 0.0], "std": [0.1, 0.2]},
                                      "video_classifier": None, "epoch": 1, "best_score": None})
    gen_cfg = load_config(config, ["model.kind=proposals", *SMALL])
    generator = BMN.from_config(gen_cfg.proposals, 2 * DIM)
    save_checkpoint(root / "gen.pt", {"config": gen_cfg.to_dict(), "classes": ["action"],
                                      "proposals": checkpoint_entry(generator, gen_cfg, 2 * DIM)})
    return root, synth, config


def _torchrun(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone",
                           "-m", "dcltal", *args], env=env, capture_output=True, text=True, timeout=240)


def test_shards_are_contiguous_blocks_that_make_the_whole():
    videos = [f"v{i}" for i in range(5)]
    parts = [shard_videos(videos, DistContext(r, 2)) for r in range(2)]
    assert parts == [["v0", "v1"], ["v2", "v3", "v4"]]
    assert sum((shard_videos(videos, DistContext(r, 3)) for r in range(3)), []) == videos


@pytest.mark.parametrize("command", ["infer", "propose"])
def test_two_processes_write_the_one_process_file(bench, command, capsys):
    root, _, config = bench
    ckpt = root / ("det.pt" if command == "infer" else "gen.pt")
    extra = [] if command == "infer" else ["--set", *SMALL]
    one, two = root / f"{command}_one.json", root / f"{command}_two.json"
    assert main([command, str(config), "--checkpoint", str(ckpt), "--out", str(one), *extra]) == 0
    run = _torchrun(command, str(config), "--checkpoint", str(ckpt), "--out", str(two), *extra)
    assert run.returncode == 0, run.stderr[-3000:]
    assert two.read_bytes() == one.read_bytes()
    assert run.stdout.count("wrote ") == 1 and "in 5 videos" in run.stdout  # rank 0 reports, for all videos
    assert not list(root.glob(f".{two.name}.*"))  # no temporary file left beside it


def test_one_process_mistake_stops_both_with_one_line(bench):
    root, synth, config = bench
    corrupt = root / "corrupt"
    corrupt.mkdir()
    for f in (synth / "features").iterdir():
        os.symlink(f, corrupt / f.name)
    last = load_annotations(synth / "annotations.json").in_subset("Test")[-1].id
    (corrupt / f"{last}.npy").unlink()
    np.save(corrupt / f"{last}.npy", np.full((40, 2 * DIM), np.nan, np.float32))  # only rank 1 reads it
    out = root / "never.json"
    run = _torchrun("infer", str(config), "--checkpoint", str(root / "det.pt"), "--out", str(out),
                    "--set", f"data.features={corrupt}")
    assert run.returncode != 0
    errors = [line for line in run.stderr.splitlines() if line.startswith("dcltal: error:")]
    assert len(errors) == 1 and f"{last}.npy" in errors[0], run.stderr[-3000:]
    workers = run.stderr.split("distributed/elastic")[0]  # what follows is torchrun's own report
    assert "Traceback" not in workers
    # the user-error code; torchrun reports the first process to leave, and may stop the other before it does
    codes = re.findall(r"exitcode\s*: (-?\d+)", run.stderr)
    assert "2" in codes and set(codes) <= {"2", "-15"}, codes
    assert not out.exists()
