"""The training health check (engine/detection/health.py): a head killed on purpose is reported in the first
epochs, once, and recorded in metrics.csv; a healthy row is not flagged."""
from __future__ import annotations

import csv

import pytest

import torch

from dcltal.config import load_config
from dcltal.engine.detection.task import DetectorTask
from dcltal.engine.detection.health import HealthCheck, LabelCounter, diagnose
from dcltal.engine.trainer import train
from train_data import tiny_benchmark, tiny_config


def test_label_entropy_is_the_loss_of_guessing_the_frequencies():
    counter = LabelCounter(5)
    counter.add(torch.tensor([0, 0, 1, -1]))
    counter.add(torch.tensor([3, 3, 3, -1]))  # -1: not a classification sample
    p = torch.tensor([2, 1, 3], dtype=torch.float64) / 6
    guess = -torch.log(p[[0, 0, 1, 2, 2, 2]]).mean()  # cross-entropy of predicting p for every sample
    assert counter.entropy() == pytest.approx(guess.item())
    assert counter.entropy() is None  # counted afresh each epoch
    counter.add(torch.tensor([4, 4]))
    assert counter.entropy() == 0.0


def test_diagnose_reads_each_sign():
    healthy = {"com": 0.6, "health_loc_active": 0.4, "health_com_spread": 0.8, "cls": 0.8, "health_cls_entropy": 1.5,
               "health_cls_active": 0.3}
    assert diagnose(healthy) == {}
    assert diagnose({**healthy, "com": 1.004}) == {}  # at the margin but still varying: a slow start
    assert set(diagnose({**healthy, "com": 1.004, "health_com_spread": 0.01})) == {"completeness"}
    assert set(diagnose({**healthy, "com": float("nan"), "cls": float("nan")})) == {"completeness", "classification"}
    assert set(diagnose({**healthy, "health_loc_active": 0.005})) == {"completeness"}
    assert set(diagnose({**healthy, "cls": 1.49})) == {"classification"}
    assert set(diagnose({**healthy, "cls": 1.49}, {"cls": 1.50})) == {"classification"}  # stuck
    assert diagnose({**healthy, "cls": 1.49}, {"cls": 1.60}) == {}  # above the guess, but learning
    assert set(diagnose({**healthy, "health_cls_active": 0.0})) == {"classification"}


def test_a_sign_warns_on_its_second_epoch_in_a_row(capsys):
    check, dead = HealthCheck(), {"com": 1.0, "health_com_spread": 0.0, "health_loc_active": 0.0}
    check(2, "rgb", dict(dead))
    assert capsys.readouterr().err == ""
    check(3, "rgb", {"com": 0.5, "health_loc_active": 0.5})
    check(4, "rgb", dict(dead))
    assert capsys.readouterr().err == ""
    row = dict(dead)
    check(5, "rgb", row)
    assert "rgb: the completeness head looks dead at epoch 5" in capsys.readouterr().err and row["health_dead"] == 1
    check(6, "rgb", dict(dead))
    assert capsys.readouterr().err == ""  # once


def test_a_killed_head_is_reported_once_and_recorded(tmp_path, monkeypatch, capsys):
    synth = tiny_benchmark(tmp_path)
    cfg = load_config(tiny_config(tmp_path, synth, epochs=4, val_every=4))
    build = DetectorTask.build_model

    def killed(self):
        model = build(self)
        if self.stream == "rgb":  # every hidden ReLU of the localization head off, for good
            with torch.no_grad():
                model.loc_head.mlp[0].bias.fill_(-1e4)
        return model

    monkeypatch.setattr(DetectorTask, "build_model", killed)
    torch.set_num_threads(1)
    train(cfg, tmp_path / "work", progress=False)
    err = capsys.readouterr().err
    assert err.count("warning: rgb: the completeness head looks dead at epoch 3") == 1
    assert "flow: the completeness head" not in err
    with open(tmp_path / "work" / "metrics.csv", newline="") as f:
        rows = {(r["epoch"], r["stream"]): r for r in csv.DictReader(f)}
    assert float(rows["1", "rgb"]["health_dead"]) == 0  # the first epoch is not judged
    assert all(float(rows[e, "rgb"]["health_dead"]) >= 1 for e in ("2", "3", "4"))
    assert all(float(rows[e, "rgb"]["health_loc_active"]) == 0 for e in ("1", "2", "3", "4"))
    assert all(float(rows[e, "rgb"]["health_com_spread"]) < 1e-3 < float(rows[e, "flow"]["health_com_spread"])
               for e in ("2", "3", "4"))
    assert all(float(rows[e, "flow"]["health_loc_active"]) > 0.05 for e in ("1", "2", "3", "4"))
    assert all(float(rows[e, s]["health_cls_entropy"]) > 0 for e in ("1", "2", "3", "4") for s in ("rgb", "flow"))


def test_completeness_spread_is_the_rms_around_each_class_mean():
    from dcltal.engine.detection.health import completeness_spread
    from dcltal.data.labelling import Targets

    torch.manual_seed(0)
    z = torch.randn(7, 3)
    action = torch.tensor([1, 1, 2, 2, 2, 3, 0])  # 0: no action, not a completeness sample
    complete = torch.tensor([1, 0, 0, 1, 0, -1, 1])  # -1: not a sample
    t = Targets(labels=action, completeness=complete, action=action, regression=torch.zeros(7, 2),
                regression_mask=torch.zeros(7, dtype=torch.bool))
    rows = [i for i in range(7) if complete[i] >= 0 and action[i] > 0]
    scores = {i: float(z[i, action[i] - 1]) for i in rows}
    residuals = []
    for i in rows:
        same = [scores[j] for j in rows if action[j] == action[i]]
        residuals.append(scores[i] - sum(same) / len(same))
    expected = (sum(r * r for r in residuals) / len(residuals)) ** 0.5
    assert completeness_spread(z, t)["health_com_spread"].item() == pytest.approx(expected, rel=1e-6)
