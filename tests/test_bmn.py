"""The BMN proposal network: the BM layer's sampling against a slow loop, the reordered
sample-then-convolve against BMN's order (values and gradients), shapes and the valid mask."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dcltal.model.bmn import BMN, sampling_matrix, valid_map_mask


def slow_bm_features(x: np.ndarray, D: int, N: int, S: int, ratio: float) -> np.ndarray:
    """[C, T] -> [C, N, D, T] by sampling each proposal's expanded region point by point."""
    C, T = x.shape
    out = np.zeros((C, N, D, T))
    for k in range(D):
        for i in range(T):
            s, e = i, i + k + 1
            lo, hi = s - ratio * (e - s), e + ratio * (e - s)
            for n in range(N):
                total = np.zeros(C)
                for j in range(S):
                    p = lo + (hi - lo) * (n * S + j + 0.5) / (N * S)
                    a = int(np.floor(p))
                    for loc, w in ((a, 1 - (p - a)), (a + 1, p - a)):
                        if 0 <= loc < T:
                            total += w * x[:, loc]
                out[:, n, k, i] = total / S
    return out


@pytest.mark.parametrize("T,D,N,S,ratio", [(7, 3, 2, 2, 0.5), (9, 5, 3, 1, 0.25), (6, 4, 4, 3, 0.0)])
def test_sampling_matrix_matches_point_by_point_sampling(T, D, N, S, ratio):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, T))
    W = sampling_matrix(T, D, N, S, ratio).to_dense().double().numpy()  # [D*T, N*T]
    # entry ((k, i), (n, t)) weighs x[:, t] into bin n of proposal (k, i)
    fast = np.einsum("kinx,cx->cnki", W.reshape(D, T, N, T), x)
    np.testing.assert_allclose(fast, slow_bm_features(x, D, N, S, ratio), atol=1e-6)


def test_sampling_weights_of_an_inside_bin_sum_to_one():
    W = sampling_matrix(20, 4, 4, 3, 0.5).to_dense().reshape(4, 20, 4, 20)
    # proposal (k=1, i=8): [8, 10] expanded to [7, 11], fully inside the window
    np.testing.assert_allclose(W[1, 8].sum(dim=-1).numpy(), np.ones(4), atol=1e-6)
    # a proposal at the window's start reads zero padding: its first bin weighs less than one
    assert float(W[3, 0, 0].sum()) < 1


def reference_boundary_matching(model: BMN, x: torch.Tensor) -> torch.Tensor:
    """BMN's order: the BM feature map [B, C, N, D, T] first, then the convolution over (C, N)."""
    T, D, N = model.temporal_scale, model.max_duration, model.num_samples
    W = model.sampling.to_dense().reshape(D, T, N, T)  # the COO matrix the model keeps
    bm = torch.einsum("kinx,bcx->bcnki", W.to(x.dtype), x)  # [B, C, N, D, T]
    H = model.sample_bias.numel()
    weight = model.sample_projection.weight.view(H, N, -1)  # [H, N, C]
    return torch.relu(torch.einsum("hnc,bcnki->bhki", weight, bm) + model.sample_bias[:, None, None])


def test_reordered_bm_layer_equals_bmn_order_values_and_gradients():
    torch.manual_seed(0)
    model = BMN(in_dim=8, temporal_scale=10, max_duration=4, num_samples=3, samples_per_bin=2,
                hidden_1d=8, hidden_3d=6, hidden_2d=4, groups=2).double()
    with torch.no_grad():
        model.sample_bias.normal_()
    x = torch.randn(2, 8, 10, dtype=torch.float64, requires_grad=True)
    fast = model.boundary_matching(x)
    slow = reference_boundary_matching(model, x)
    torch.testing.assert_close(fast, slow)
    g = torch.randn_like(fast)
    grads_fast = torch.autograd.grad((fast * g).sum(), [x, model.sample_projection.weight])
    grads_slow = torch.autograd.grad((slow * g).sum(), [x, model.sample_projection.weight])
    for a, b in zip(grads_fast, grads_slow):
        torch.testing.assert_close(a, b)


def test_forward_shapes_ranges_and_state_dict():
    model = BMN(in_dim=12, temporal_scale=16, max_duration=5, hidden_1d=8, hidden_3d=8, hidden_2d=4)
    out = model(torch.randn(3, 16, 12))
    assert out.start.shape == out.end.shape == (3, 16)
    assert out.cls_map.shape == out.reg_map.shape == (3, 5, 16)
    for t in (out.start, out.end, out.cls_map, out.reg_map):
        assert ((t > 0) & (t < 1)).all()
    assert not any("sampling" in k or k == "valid" for k in model.state_dict())
    with pytest.raises(ValueError):
        model(torch.randn(1, 15, 12))


def test_valid_mask_keeps_proposals_ending_inside_the_window():
    mask = valid_map_mask(5, 3)
    expected = [[i + k + 1 <= 4 for i in range(5)] for k in range(3)]
    assert mask.tolist() == expected
