"""Run records and console output: WORK_DIR/config.yaml and train.log, --quiet, and progress bars
only on a terminal unless asked for (--progress, DCLTAL_PROGRESS)."""
from __future__ import annotations

import logging

import pytest
import torch

from dcltal.cli import main
from dcltal.config import load_config
from train_data import tiny_benchmark, tiny_config


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    root = tmp_path_factory.mktemp("runlog")
    return root, tiny_config(root, tiny_benchmark(root, videos_train=4, videos_test=2), epochs=1)


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.delenv("DCLTAL_PROGRESS", raising=False)
    yield
    torch.set_num_threads(threads)


def test_train_writes_config_and_log_and_quiet_prints_nothing(bench, capsys):
    root, config = bench
    work = root / "quiet"
    assert main(["train", str(config), "--work-dir", str(work), "--quiet", "--set", "train.seed=3"]) == 0
    out, err = capsys.readouterr()
    assert out == "" and "%|" not in err and "epoch 1" not in err  # no bars, no summary, no log lines
    saved = load_config(work / "config.yaml")  # the resolved config: the file's keys, the --set, the defaults
    assert saved.to_dict() == load_config(config, ["train.seed=3"]).to_dict() and saved.train.seed == 3
    log = (work / "train.log").read_text()
    for expected in (f"torch {torch.__version__}", "numpy ", "python ", "device cpu, 1 torch threads, 1 process;",
                     "annotations: Validation 4 videos / ", "subset Validation: 4 videos (0 ids in data.avoid_videos), ",
                     " proposals", "epoch 1 rgb: lr ", "epoch 1 flow: ", "epoch 1 fused: val_mAP ",
                     "INFO finished"):
        assert expected in log, (expected, log)
    assert not logging.getLogger("dcltal").handlers  # the run's handlers are gone with it

    # --resume: the config rewritten with the resumed run's keys, the log appended
    assert main(["train", str(config), "--work-dir", str(work), "--quiet", "--resume",
                 "--set", "train.seed=3", "train.epochs=2"]) == 0
    assert load_config(work / "config.yaml").train.epochs == 2
    log = (work / "train.log").read_text()
    assert log.count("dcltal train into") == 2 and "resumed from checkpoints/last.pt" in log
    assert "epoch 2 fused: " in log and "epoch 1 rgb" in log

    # infer --quiet: no summary line either
    capsys.readouterr()
    out_file = root / "res.json"
    assert main(["infer", str(config), "--checkpoint", str(work / "checkpoints" / "last.pt"), "--out",
                 str(out_file), "--quiet"]) == 0
    assert capsys.readouterr().out == "" and out_file.is_file()


def test_progress_bars_only_where_asked_and_log_lines_on_stderr_without_them(bench, capsys, monkeypatch):
    root, config = bench
    assert main(["train", str(config), "--work-dir", str(root / "plain")]) == 0  # stderr is not a terminal here
    out, err = capsys.readouterr()
    assert "checkpoint: " in out
    assert "%|" not in err and "epoch 1 fused: val_mAP" in err  # no bars; the log's lines show the run
    assert main(["train", str(config), "--work-dir", str(root / "bars"), "--progress"]) == 0
    err = capsys.readouterr().err
    assert "epochs: 100%|" in err and "epoch 1 fused" not in err
    monkeypatch.setenv("DCLTAL_PROGRESS", "1")
    assert main(["train", str(config), "--work-dir", str(root / "env")]) == 0
    assert "epochs: 100%|" in capsys.readouterr().err


def test_mistakes(bench, capsys, monkeypatch):
    root, config = bench
    assert main(["train", str(config), "--work-dir", str(root / "x"), "--quiet", "--progress"]) == 2
    assert "not allowed with argument" in capsys.readouterr().err
    monkeypatch.setenv("DCLTAL_PROGRESS", "yes")
    assert main(["infer", str(config), "--checkpoint", "c.pt", "--out", str(root / "r.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "DCLTAL_PROGRESS='yes': use 1" in err[0]
    monkeypatch.delenv("DCLTAL_PROGRESS")
    # a run that stops on a mistake says so at the end of its log
    assert main(["train", str(config), "--work-dir", str(root / "bad"), "--quiet",
                 "--set", f"data.features={root}/nowhere"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nowhere" in err[0]
    last = (root / "bad" / "train.log").read_text().strip().splitlines()[-1]
    assert "ERROR stopped: " in last and "nowhere" in last
