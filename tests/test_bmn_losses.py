"""BMN losses: L_bl against its formula written as a loop, the balanced regression sample."""
from __future__ import annotations

import math

import torch

from dcltal.model.bmn import BMN
from dcltal.model.bmn_losses import balanced_regression, bmn_losses, weighted_binary_logistic


def slow_l_bl(p, b, mask):
    entries = [(pi, bi) for pi, bi, mi in zip(p, b, mask) if mi]
    n = len(entries)
    n_pos = sum(1 for _, bi in entries if bi)
    a_pos, a_neg = n / max(n_pos, 1), n / max(n - n_pos, 1)
    return -sum(a_pos * math.log(pi) if bi else a_neg * math.log(1 - pi) for pi, bi in entries) / n


def test_weighted_binary_logistic_matches_formula():
    g = torch.Generator().manual_seed(0)
    p = torch.rand(40, generator=g, dtype=torch.float64) * 0.98 + 0.01
    b = torch.rand(40, generator=g) < 0.2
    mask = torch.rand(40, generator=g) < 0.7
    got = weighted_binary_logistic(p, b, mask)
    assert abs(float(got) - slow_l_bl(p.tolist(), b.tolist(), mask.tolist())) < 1e-10
    every = weighted_binary_logistic(p, b)
    assert abs(float(every) - slow_l_bl(p.tolist(), b.tolist(), [True] * 40)) < 1e-10


def test_weighted_binary_logistic_balances_the_two_sides():
    # one positive among ten: a wrong positive costs as much as all nine negatives being equally wrong
    p = torch.full((10,), 0.3, dtype=torch.float64)
    b = torch.zeros(10, dtype=torch.bool)
    b[0] = True
    loss = weighted_binary_logistic(p, b)
    expected = -(10 / 1 * math.log(0.3) + 10 / 9 * 9 * math.log(0.7)) / 10
    assert abs(float(loss) - expected) < 1e-12


def test_balanced_regression_draws_as_many_negatives_as_positives():
    target = torch.zeros(20, 30)
    target[:2, :3] = 1.0  # 6 positives, predicted exactly
    pred = torch.ones(20, 30)  # every negative has squared error 1
    valid = torch.ones(20, 30, dtype=torch.bool)
    loss = balanced_regression(pred, target, valid, positive=0.6, generator=torch.Generator().manual_seed(1))
    assert abs(float(loss) - 6 / 12) < 1e-6
    # invalid entries never count
    valid[2:] = False
    valid[:2, 3:] = False
    assert float(balanced_regression(pred, target, valid, 0.6)) == 0.0


def test_bmn_losses_backpropagate_to_every_parameter():
    torch.manual_seed(0)
    model = BMN(in_dim=6, temporal_scale=12, max_duration=4, hidden_1d=8, hidden_3d=8, hidden_2d=4, groups=2)
    out = model(torch.randn(2, 12, 6))
    start = torch.zeros(2, 12)
    start[:, 3] = 1
    end = torch.zeros(2, 12)
    end[:, 6] = 1
    iou = torch.rand(2, 4, 12)
    losses = bmn_losses(out, start, end, iou, model.valid)
    assert set(losses) == {"tem", "pem_cls", "pem_reg", "total"}
    losses["total"].backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
