"""The packed, once-per-snippet model against the slow per-proposal reference (float64): outputs,
losses and gradients, for every deterministic variant, both regression codings and the Table 2
regrouping, on batches with one-snippet proposals, proposals at the edges and longer than the video."""
from __future__ import annotations

import pytest
import torch
from model_batches import edge_case_batch, random_targets
from reference_model import reference_forward, reference_losses

from dcltal.model.detector import Detector

DIM, C = 12, 4


def make(variant="dnet", regression="agnostic", seed=0, head_norm="layer"):
    """A model with random weights, a random input scale and LayerNorms (model.input_norm: rms and
    model.head_norm: layer) unless ``head_norm`` says none."""
    torch.manual_seed(seed)
    model = Detector(DIM, C, variant=variant, hidden_dim=4, cls_hidden=10, loc_hidden=14, dropout=0.0,
                     regression=regression, head_norm=head_norm).double()
    with torch.no_grad():
        model.set_input_scale(torch.rand(DIM, dtype=torch.float64) * 2 + 0.1)
        for norm in (model.cls_norm, model.loc_norm):
            for p in norm.parameters():  # away from the initial ones and zeros, so a mix-up would show
                p.add_(torch.randn_like(p) * 0.3)
    return model.eval()


def grads(model, batch, loss):
    inputs = list(model.parameters()) + ([batch.features] if batch.features.requires_grad else [])
    return torch.autograd.grad(loss, inputs, allow_unused=True, retain_graph=True)


def assert_close_all(a, b):
    for x, y in zip(a, b):
        if x is None or y is None:
            assert (x is None or not x.abs().any()) and (y is None or not y.abs().any())
        else:
            torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("variant,head_norm", [(v, "layer") for v in ("dnet", "baseline", "mlp1", "mlp2", "only_common",
                                                                      "no_common")] + [("dnet", "none")])
def test_outputs_and_gradients_match_reference(variant, head_norm):
    model = make(variant, head_norm=head_norm)
    batch = edge_case_batch(DIM, seed=1)
    batch.features.requires_grad_(True)
    targets = random_targets(batch, C, seed=2)
    fast = model(batch)
    slow = reference_forward(model, batch)
    for name in ("cls_logits", "completeness", "regression", "reconstruction"):
        torch.testing.assert_close(getattr(fast, name), getattr(slow, name), rtol=1e-5, atol=1e-5)
    fast_l = model.losses(fast, targets, batch)
    slow_l = reference_losses(slow, targets, batch.proposal_video, batch.num_videos)
    for k in ("cls", "reg", "com", "rec", "total"):
        torch.testing.assert_close(fast_l[k], torch.as_tensor(slow_l[k], dtype=torch.float64), rtol=1e-5, atol=1e-5)
    assert_close_all(grads(model, batch, fast_l["total"]), grads(model, batch, slow_l["total"]))


def test_class_specific_regression_matches_reference():
    model = make("dnet", regression="class_specific")
    batch = edge_case_batch(DIM, seed=3, lengths=(5, 17))
    batch.features.requires_grad_(True)
    targets = random_targets(batch, C, seed=4)
    fast, slow = model(batch), reference_forward(model, batch)
    assert fast.regression.shape == (batch.regions.shape[0], C, 2)
    torch.testing.assert_close(fast.regression, slow.regression)
    fast_l = model.losses(fast, targets, batch)
    slow_l = reference_losses(slow, targets, batch.proposal_video, batch.num_videos)
    torch.testing.assert_close(fast_l["total"], slow_l["total"])
    assert_close_all(grads(model, batch, fast_l["total"]), grads(model, batch, slow_l["total"]))


@pytest.mark.parametrize("cls_feature,loc_feature", [("loc", "loc"), ("cls", "cls"), ("loc", "cls")])
def test_regrouping_matches_reference(cls_feature, loc_feature):
    model = make("dnet")
    batch = edge_case_batch(DIM, seed=5, lengths=(8, 3))
    fast = model(batch, cls_feature=cls_feature, loc_feature=loc_feature)
    slow = reference_forward(model, batch, cls_feature=cls_feature, loc_feature=loc_feature)
    torch.testing.assert_close(fast.cls_logits, slow.cls_logits)
    torch.testing.assert_close(fast.completeness, slow.completeness)
    default = model(batch)
    assert not torch.allclose(fast.cls_logits, default.cls_logits) or not torch.allclose(fast.completeness, default.completeness)
