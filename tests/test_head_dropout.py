"""Dropout sits in the classification head only by default (``model.loc_dropout`` 0): under dropout
the completeness hinge's OHEM picks the noisiest negatives, which drives the localization head to a
constant output (its ReLUs die; docs/training.md). These tests pin the configuration down."""
from __future__ import annotations

import torch
from model_batches import edge_case_batch

from dcltal.config import config_from_dict
from dcltal.model.detector import Detector

DIM, C = 10, 3


def test_default_config_keeps_dropout_out_of_the_localization_head():
    cfg = config_from_dict({})
    torch.manual_seed(0)
    model = Detector.from_config(cfg.model, DIM, C).train()
    batch = edge_case_batch(DIM, dtype=torch.float32)
    a, b = model(batch), model(batch)
    assert not torch.equal(a.cls_logits, b.cls_logits)  # classification: dropout active
    assert torch.equal(a.completeness, b.completeness) and torch.equal(a.regression, b.regression)


def test_loc_dropout_is_a_config_key():
    cfg = config_from_dict({"model": {"loc_dropout": 0.5, "dropout": 0.0}})
    torch.manual_seed(0)
    model = Detector.from_config(cfg.model, DIM, C).train()
    batch = edge_case_batch(DIM, dtype=torch.float32)
    a, b = model(batch), model(batch)
    assert torch.equal(a.cls_logits, b.cls_logits)
    assert not torch.equal(a.completeness, b.completeness)
