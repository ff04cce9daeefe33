"""The context-based aggregation network (paper §3.3, Eq. 6-11; from ContextLoc, Zhu et al. 2021).

For a region (a proposal or one of its extended regions) with snippet features F(t):
  f_O   = max_t F(t)                                   (Eq. 6)
  a(t)  = cos(f_O, F(t)), then ReLU and divided by the sum over the region, as ContextLoc's
          released code normalises it (the paper's Eq. 7 leaves the normalisation unsaid)   (Eq. 7)
  f_a   = W_a^O f_O + W_a sum_t a(t) F(t)              (Eq. 8, D/2)
  f_g   = W_g maxpool_video(x) + mean_t W_l F(t)       (Eq. 9-10, D/2; x = the ORIGINAL video features)
  f     = [f_a, f_g]                                   (Eq. 11, D)
The linear maps W_a and W_l are applied once per snippet and then pooled per region (attention in
tiles of nearby regions, means from the same tiles), or, where a call has fewer regions than snippets,
the features are pooled first and the maps applied once per region: the same numbers (the maps are
linear), the smaller cost. The pooling is :func:`dcltal.ops.pooling.pool_regions` (a compiled pass
without autograd on the CPU, else torch).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dcltal.ops.pooling import pool_regions


class ContextAggregator(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        half = dim // 2
        self.proposal = nn.Linear(dim, half)  # W_a^O on f_O
        self.attended = nn.Linear(dim, half)  # W_a on the attended snippets
        self.video = nn.Linear(dim, half)  # W_g on the video's max-pooled original features
        self.local = nn.Linear(dim, half)  # W_l on the region's snippets

    def forward(
        self,
        features: torch.Tensor,  # [S, D] per-snippet features (F_cls or F_loc) of the packed videos
        lo: torch.Tensor,  # [R] first snippet of each region
        hi: torch.Tensor,  # [R] end (exclusive) of each region
        video_max: torch.Tensor,  # [V, D] Eq. 9 per video, of the original features
        region_video: torch.Tensor,  # [R] video of each region
    ) -> torch.Tensor:  # [R, D]
        pool_first = lo.shape[0] < features.shape[0]
        if pool_first:
            # fewer regions than snippets: pool F first, then map each region once (W_a, W_l are linear,
            # so W_a sum_t a(t) F(t) = sum_t a(t) W_a F(t) and mean_t W_l F(t) = W_l mean_t F(t))
            values = mean_values = features
        else:  # the maps once per snippet ([S, D/2] each), then pooled
            per_snippet = F.linear(features, torch.cat([self.attended.weight, self.local.weight]))  # [S, D]
            values, mean_values = per_snippet.split(self.proposal.out_features, dim=-1)
        f_o, attended, local = pool_regions(features, values, mean_values, lo, hi)  # Eq. 6, 7-8, 10's mean
        if pool_first:
            attended, local = F.linear(attended, self.attended.weight), F.linear(local, self.local.weight)
        f_a = self.proposal(f_o) + attended + self.attended.bias  # Eq. 7-8
        f_g = self.video(video_max)[region_video] + local + self.local.bias  # Eq. 10
        return torch.cat([f_a, f_g], dim=-1)  # Eq. 11
