"""Parameter counts (Table 1 of the paper: 11.7M with the D-Net, 1.6M of it the D-Net, 10.1M without)
and the ``dcltal params`` command."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dcltal import cli
from dcltal.model.detector import Detector

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "thumos14_i3d.yaml"
PAPER = {"dnet": 11.7e6, "baseline": 10.1e6, "mlp1": 11.7e6, "mlp2": 11.7e6}
TOLERANCE = {"dnet": 0.02, "baseline": 0.02, "mlp1": 0.03, "mlp2": 0.03}


def params_json(capsys, *overrides):
    argv = ["params", str(CONFIG), "--json"] + (["--set", *overrides] if overrides else [])
    assert cli.main(argv) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("variant", sorted(PAPER))
def test_counts_match_table_1(capsys, variant):
    counts = params_json(capsys, f"model.variant={variant}")
    assert abs(counts["total"] - PAPER[variant]) <= TOLERANCE[variant] * PAPER[variant]
    assert {"total", "disentangle", "aggregate"} <= counts.keys()
    if variant == "baseline":
        assert counts["disentangle"] == 0
    else:
        assert abs(counts["disentangle"] - 1.6e6) <= 0.02 * 1.6e6


def test_dnet_arithmetic():
    """6 D D_h + 3 D_h + D for the D-Net; 4 (D/2)(D + 1) an aggregator (DESIGN §2)."""
    d, h, c = 1024, 256, 20
    with torch.device("meta"):
        counts = Detector(d, c, hidden_dim=h).parameter_counts()
    assert counts["disentangle"] == 6 * d * h + 3 * h + d == 1_574_656
    assert counts["aggregate_cls"] == counts["aggregate_loc"] == 4 * (d // 2) * (d + 1)
    assert counts["cls_head"] == (d + 1) * 1024 + (1024 + 1) * (c + 1)
    assert counts["loc_head"] == (3 * d + 1) * 1536 + (1536 + 1) * (c + 2)
    assert counts["total"] == sum(counts[k] for k in ("disentangle", "aggregate", "heads"))


def test_sizes_follow_config_keys(capsys):
    small = params_json(capsys, "model.cls_hidden=512", "model.loc_hidden=768", "model.regression=class_specific")
    default = params_json(capsys)
    assert small["cls_head"] == (1024 + 1) * 512 + (512 + 1) * 21
    assert small["loc_head"] == (3072 + 1) * 768 + (768 + 1) * (20 + 40)
    assert small["aggregate"] == default["aggregate"]


def test_human_readable_output(capsys):
    assert cli.main(["params", str(CONFIG)]) == 0
    out = capsys.readouterr().out
    assert "D = 1024" in out and "total" in out


def test_proposal_generator_counts(capsys):
    """model.kind: proposals counts the BMN-style generator, which reads both streams (2048 columns):
    the first convolution is grouped, 4 groups of 512 inputs to 16 outputs each, kernel 3."""
    counts = params_json(capsys, "model.kind=proposals")
    assert counts["total"] == counts["base"] + counts["temporal_evaluation"] + counts["proposal_evaluation"]
    h = 64  # proposals.hidden_1d
    assert counts["base"] == (2048 // 4) * 3 * h + h + (h // 4) * 3 * h + h
