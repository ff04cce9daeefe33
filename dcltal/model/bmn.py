"""The built-in proposal network, in the manner of BMN (Lin et al., "BMN: Boundary-Matching Network
for Temporal Action Proposal Generation", ICCV 2019).

A window of ``T`` temporal locations (features ``[T, C]``, see :mod:`dcltal.engine.proposals.task`
for how windows are cut or rescaled from a video) goes through

- the *base module*: two temporal convolutions shared by both branches;
- the *temporal evaluation module* (TEM, BMN §3.3): a starting and an ending probability per location;
- the *proposal evaluation module* (PEM, BMN §3.3): the *boundary-matching layer* samples, for every
  proposal (start location ``i``, duration ``d``), ``N`` points of its expanded region from the
  feature sequence by a fixed sampling matrix (sparse, of linear interpolation weights), giving
  the BM feature map ``[C, N, D, T]``; a convolution over the
  ``N`` samples (BMN's 3D convolution with kernel ``N x 1 x 1``) and 2D convolutions turn it into the
  *BM confidence map* with two channels: ``M_CC`` (trained as classification) and ``M_CR``
  (trained as regression of the tIoU).

Layout of the map (BMN Fig. 2): row ``k`` holds the proposals of duration ``k + 1`` locations and
column ``i`` those starting at location ``i``, so map entry ``(k, i)`` is the proposal from location
``i`` to location ``i + k + 1``. Entries whose end falls after location ``T - 1`` are invalid
(:func:`valid_map_mask`); the losses and the decoding ignore them.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@dataclass
class BMNOutput:
    start: torch.Tensor  # [B, T] starting probability per location (TEM)
    end: torch.Tensor  # [B, T] ending probability per location (TEM)
    cls_map: torch.Tensor  # [B, D, T] M_CC: confidence of proposal (duration k + 1, start i), as classification
    reg_map: torch.Tensor  # [B, D, T] M_CR: the same, as regression of the best tIoU


def valid_map_mask(temporal_scale: int, max_duration: int) -> torch.Tensor:
    """[D, T] bool: map entry (k, i) is valid where its end ``i + k + 1`` lies inside the window."""
    k = torch.arange(max_duration)[:, None]
    i = torch.arange(temporal_scale)[None, :]
    return i + k + 1 <= temporal_scale - 1


def sampling_matrix(temporal_scale: int, max_duration: int, num_samples: int, samples_per_bin: int,
                    extend_ratio: float) -> torch.Tensor:
    """The BM layer's sampling weights as a sparse ``[D * T, N * T]`` matrix (BMN §3.3, "BM layer").

    Entry ``((k, i), (n, t))`` is the weight of location ``t`` in bin ``n`` of proposal ``(k, i)``:
    the proposal ``[i, i + k + 1]`` is expanded by ``extend_ratio`` of its length on each side (0.5 in
    the BMN release), the expanded region is cut into ``N`` equal bins, and each bin averages
    ``samples_per_bin`` points placed at the centres of equal sub-bins. A point at a fractional
    location is linear interpolation of its two neighbours; points outside ``[0, T - 1]`` read zeros
    (the sequence is zero-padded).
    """
    T, D, N, S = temporal_scale, max_duration, num_samples, samples_per_bin
    k = np.arange(D, dtype=np.float64)[:, None]  # [D, 1]
    i = np.arange(T, dtype=np.float64)[None, :]  # [1, T]
    length = k + 1.0
    lo = i - extend_ratio * length  # [D, T] start of the expanded region
    span = length * (1 + 2 * extend_ratio)  # [D, 1]
    frac = (np.arange(N * S, dtype=np.float64) + 0.5) / (N * S)  # [N*S] sub-bin centres, bins in order
    points = (lo[None] + span[None] * frac[:, None, None]).reshape(N, S, D, T)
    left = np.floor(points)
    right_weight = points - left
    shape = (2, N, S, D, T)
    rows = np.broadcast_to(np.arange(D * T).reshape(1, 1, 1, D, T), shape)  # proposal (k, i)
    locations = np.stack([left, left + 1])  # [2, N, S, D, T]
    cols = np.arange(N).reshape(1, N, 1, 1, 1) * T + locations  # (bin n, location t)
    vals = np.stack([1 - right_weight, right_weight]) / S
    inside = (locations >= 0) & (locations <= T - 1) & (vals > 0)
    indices = torch.from_numpy(np.stack([rows[inside], cols[inside]]).astype(np.int64))
    values = torch.from_numpy(vals[inside].astype(np.float32))
    return torch.sparse_coo_tensor(indices, values, (D * T, N * T), check_invariants=False).coalesce()


class _SparseProduct(torch.autograd.Function):
    """``matrix @ dense`` with the transpose kept at hand for the backward pass (torch would transpose
    and re-sort the sparse matrix on every backward)."""

    @staticmethod
    def forward(ctx, matrix: torch.Tensor, matrix_t: torch.Tensor, dense: torch.Tensor) -> torch.Tensor:
        ctx.matrix_t = matrix_t
        return matrix @ dense

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return None, None, ctx.matrix_t @ grad


class BMN(nn.Module):
    """Base module, TEM and PEM of BMN over a window of ``temporal_scale`` locations.

    ``in_dim`` is the width of the input features (all streams side by side, as BMN reads two-stream
    features); the hidden sizes default to values that keep the network small enough to train on a
    CPU for the synthetic benchmark (the BMN release uses 256 / 512 / 128 and 32 x 3 samples).
    """

    def __init__(self, in_dim: int, temporal_scale: int = 128, max_duration: int = 40, num_samples: int = 8,
                 samples_per_bin: int = 3, extend_ratio: float = 0.5, hidden_1d: int = 64, hidden_3d: int = 64,
                 hidden_2d: int = 32, groups: int = 4):
        super().__init__()
        self.temporal_scale, self.max_duration, self.num_samples = temporal_scale, max_duration, num_samples
        self.base = nn.Sequential(
            nn.Conv1d(in_dim, hidden_1d, 3, padding=1, groups=groups), nn.ReLU(inplace=True),
            nn.Conv1d(hidden_1d, hidden_1d, 3, padding=1, groups=groups), nn.ReLU(inplace=True),
        )
        self.start_head = self._boundary_head(hidden_1d, groups)
        self.end_head = self._boundary_head(hidden_1d, groups)
        self.proposal_1d = nn.Sequential(nn.Conv1d(hidden_1d, hidden_1d, 3, padding=1), nn.ReLU(inplace=True))
        # BMN's Conv3d with kernel (N, 1, 1) over the BM feature map [C, N, D, T]: see boundary_matching
        self.sample_projection = nn.Conv1d(hidden_1d, hidden_3d * num_samples, 1, bias=False)
        self.sample_bias = nn.Parameter(torch.zeros(hidden_3d))
        self.proposal_2d = nn.Sequential(
            nn.Conv2d(hidden_3d, hidden_2d, 1), nn.ReLU(inplace=True),
            nn.Conv2d(hidden_2d, hidden_2d, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(hidden_2d, hidden_2d, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(hidden_2d, 2, 1), nn.Sigmoid(),
        )
        # a fixed matrix, rebuilt from the arguments: neither a parameter nor a buffer (DDP cannot
        # broadcast sparse buffers), moved to the input's device and dtype when first used there
        self.sampling = sampling_matrix(temporal_scale, max_duration, num_samples, samples_per_bin, extend_ratio)
        self._products: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}
        self.register_buffer("valid", valid_map_mask(temporal_scale, max_duration), persistent=False)

    @staticmethod
    def _boundary_head(hidden: int, groups: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv1d(hidden, hidden, 3, padding=1, groups=groups), nn.ReLU(inplace=True),
                             nn.Conv1d(hidden, 1, 1), nn.Sigmoid())

    @classmethod
    def from_config(cls, proposals_cfg, in_dim: int) -> "BMN":
        c = proposals_cfg
        return cls(in_dim, c.temporal_scale, c.max_duration, c.num_samples, c.samples_per_bin, c.extend_ratio,
                   c.hidden_1d, c.hidden_3d, c.hidden_2d, c.groups)

    def _sampling_on(self, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """The sampling matrix [D*T, N*T] and its transpose as CSR on ``device`` in ``dtype``, made once."""
        key = (device, dtype)
        if key not in self._products:
            m = self.sampling.to(device=device, dtype=dtype)
            with warnings.catch_warnings():  # CSR is marked beta; only its product with a dense matrix is used
                warnings.simplefilter("ignore", UserWarning)
                self._products[key] = (m.to_sparse_csr(), m.t().coalesce().to_sparse_csr())
        return self._products[key]

    def boundary_matching(self, x: torch.Tensor) -> torch.Tensor:
        """BM layer followed by BMN's convolution over the N samples: [B, C, T] -> [B, H3, D, T].

        BMN samples the BM feature map ``[C, N, D, T]`` and then applies a convolution with kernel
        ``N x 1 x 1`` (weights ``W[h, c, n]``). Both steps are linear, so they are computed in the
        other order with the same result: first ``y[h, n, t] = sum_c W[h, c, n] x[c, t]`` per location,
        then one sparse product with the sampling matrix over ``(n, t)``. This never forms the
        ``C * N`` channels at each of the ``D * T`` map entries.
        """
        B, _, T = x.shape
        H = self.sample_bias.numel()
        y = self.sample_projection(x).view(B, H, self.num_samples, T)  # [B, H3, N, T]
        # single precision at least: under CUDA autocast y arrives in half, which the sparse product does not take
        y = y.permute(2, 3, 0, 1).reshape(self.num_samples * T, B * H)  # [N*T, B*H3]
        y = y.to(torch.promote_types(y.dtype, torch.float32))
        out = _SparseProduct.apply(*self._sampling_on(y.device, y.dtype), y)  # [D*T, B*H3]
        out = out.view(self.max_duration, T, B, H).permute(2, 3, 0, 1)  # [B, H3, D, T]
        return torch.relu(out + self.sample_bias[:, None, None])

    def forward(self, features: torch.Tensor) -> BMNOutput:
        """``features`` [B, T, C_in] -> :class:`BMNOutput`."""
        if features.shape[1] != self.temporal_scale:
            raise ValueError(f"BMN expects windows of {self.temporal_scale} locations, got {features.shape[1]}")
        x = self.base(features.transpose(1, 2))  # [B, H1, T]
        start = self.start_head(x)[:, 0]  # [B, T]
        end = self.end_head(x)[:, 0]  # [B, T]
        bm = self.boundary_matching(self.proposal_1d(x))  # [B, H3, D, T]
        maps = self.proposal_2d(bm)  # [B, 2, D, T]
        return BMNOutput(start=start, end=end, cls_map=maps[:, 0], reg_map=maps[:, 1])
