"""Two trained detectors as one: the paper's Table 3 rows that take classification from one
representation and localization from another."""
from __future__ import annotations

import dataclasses

from torch import nn


class SplitDetector(nn.Module):
    """Classification from one model, completeness and regression from another (paper Table 3:
    the proposal feature F_pro for one task, the disentangled features for the other)."""

    def __init__(self, cls_model: nn.Module, loc_model: nn.Module):
        super().__init__()
        self.cls_model, self.loc_model = cls_model, loc_model

    def forward(self, batch, cls_feature: str = "cls", loc_feature: str = "loc", reconstruction: bool = True):
        cls_out = self.cls_model(batch, cls_feature=cls_feature, loc_feature=loc_feature, reconstruction=False)
        loc_out = self.loc_model(batch, cls_feature=cls_feature, loc_feature=loc_feature,
                                 reconstruction=reconstruction)
        return dataclasses.replace(loc_out, cls_logits=cls_out.cls_logits)

    def scores(self, out) -> torch.Tensor:
        return self.loc_model.scores(out)  # Eq. 16 is the same formula for both models
