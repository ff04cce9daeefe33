"""Prediction heads (paper §3.4, Eq. 12-14)."""
from __future__ import annotations

import torch
from torch import nn


class ClassificationHead(nn.Module):
    """M^cls (Eq. 12): MLP (Linear, ReLU, dropout) then a fully connected layer to C + 1 logits
    (index 0 = background) on the aggregated classification feature f_cls [N, D]."""

    def __init__(self, dim: int, hidden: int, num_classes: int, dropout: float = 0.5):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(dropout))
        self.fc = nn.Linear(hidden, num_classes + 1)

    def forward(self, f_cls: torch.Tensor) -> torch.Tensor:  # [N, C + 1]
        return self.fc(self.mlp(f_cls))


class LocalizationHead(nn.Module):
    """M^z and M^loc (Eq. 13-14): one MLP over [f_L, f_loc, f_R] ([N, 3D]) shared by the completeness
    layer (C scores) and the regression layer: one (start, end) pair per proposal ([N, 2], Eq. 14), or
    one a class ([N, C, 2]) with ``class_specific`` (the SSN / P-GCN lineage)."""

    def __init__(self, dim: int, hidden: int, num_classes: int, dropout: float = 0.5, class_specific: bool = False):
        super().__init__()
        self.num_classes, self.class_specific = num_classes, class_specific
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(dropout))
        self.completeness = nn.Linear(hidden, num_classes)
        self.regression = nn.Linear(hidden, 2 * num_classes if class_specific else 2)

    def forward(self, f_loc3: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.mlp(f_loc3)  # [N, hidden]
        reg = self.regression(h)
        if self.class_specific:
            reg = reg.view(-1, self.num_classes, 2)
        return self.completeness(h), reg  # [N, C], [N, 2] or [N, C, 2]
