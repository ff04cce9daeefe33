"""The optional extras: a command that needs a missing one says which in one line; training goes on without tensorboard."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from dcltal.cli import main
from dcltal.engine.metrics import MetricsLog

CONFIG = Path(__file__).parents[1] / "configs" / "synth.yaml"


@pytest.fixture
def no_matplotlib(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now fails
    for name in [n for n in sys.modules if n == "dcltal.viz" or n.startswith("dcltal.viz.")]:
        monkeypatch.delitem(sys.modules, name)


@pytest.mark.parametrize("argv", [["visualize", str(CONFIG), "--checkpoint", "m.pt", "--video", "v", "--out", "figs"],
                                  ["demo", "--out", "demo"]])
def test_plotting_commands_name_the_viz_extra(no_matplotlib, tmp_path, monkeypatch, capsys, argv):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install 'dcltal[viz]'" in err
    assert not list(tmp_path.iterdir())  # stopped before writing anything


def test_training_metrics_without_tensorboard(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    log = MetricsLog(tmp_path)
    log.write(1, {"rgb": {"loss": 0.5}})
    log.close()
    assert "pip install 'dcltal[tensorboard]'" in capsys.readouterr().err
    assert (tmp_path / "metrics.csv").read_text().splitlines() == ["epoch,stream,loss", "1,rgb,0.5"]
    assert not (tmp_path / "tensorboard").exists()
