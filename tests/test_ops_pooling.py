"""Region pooling ops against obvious per-region loops: sparse-table max (values and first-argmax
gradients, with ties), prefix-sum sums and means, and the tiled attention with autograd."""
from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dcltal.ops.pooling import region_attention_mean, region_max, region_mean, region_sum


def random_regions(s: int, r: int, gen: torch.Generator):
    a = torch.randint(0, s, (r,), generator=gen)
    b = torch.randint(0, s, (r,), generator=gen)
    lo, hi = torch.minimum(a, b), torch.maximum(a, b) + 1
    return lo, hi


def loop_max(x, lo, hi):
    """Per region: values at the first argmax (what the sparse table's gradient follows)."""
    rows = []
    for a, b in zip(lo.tolist(), hi.tolist()):
        seg = x[a:b]
        rows.append(seg.gather(0, seg.argmax(0, keepdim=True))[0])
    return torch.stack(rows)


@settings(max_examples=40, deadline=None)
@given(s=st.integers(1, 70), r=st.integers(1, 30), seed=st.integers(0, 10_000), levels=st.integers(1, 4))
def test_region_max_values_and_tied_gradients(s, r, seed, levels):
    gen = torch.Generator().manual_seed(seed)
    lo, hi = random_regions(s, r, gen)
    x = torch.randint(0, levels, (s, 5), generator=gen).double().requires_grad_(True)  # many ties
    fast = region_max(x, lo, hi)
    slow = loop_max(x, lo, hi)
    torch.testing.assert_close(fast, slow, rtol=0, atol=0)
    w = torch.randn(fast.shape, generator=gen, dtype=torch.float64)
    g_fast, = torch.autograd.grad((fast * w).sum(), x)
    g_slow, = torch.autograd.grad((slow * w).sum(), x)
    torch.testing.assert_close(g_fast, g_slow, rtol=0, atol=1e-12)
    with torch.no_grad():  # the values-only table
        torch.testing.assert_close(region_max(x, lo, hi), slow.detach(), rtol=0, atol=0)


def test_region_max_gradcheck():
    gen = torch.Generator().manual_seed(0)
    lo, hi = random_regions(40, 25, gen)
    x = torch.randn(40, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: region_max(t, lo, hi), (x,))


def test_region_sum_and_mean():
    gen = torch.Generator().manual_seed(1)
    lo, hi = random_regions(50, 30, gen)
    x = torch.randn(50, 4, generator=gen)
    sums = torch.stack([x[a:b].sum(0) for a, b in zip(lo.tolist(), hi.tolist())])
    means = torch.stack([x[a:b].mean(0) for a, b in zip(lo.tolist(), hi.tolist())])
    torch.testing.assert_close(region_sum(x, lo, hi), sums)
    torch.testing.assert_close(region_mean(x, lo, hi), means)
    assert region_sum(x, lo, hi).dtype == torch.float32


def loop_attention(query, keys, values, lo, hi):
    rows = []
    for r, (a, b) in enumerate(zip(lo.tolist(), hi.tolist())):
        k = keys[a:b]
        cos = torch.nn.functional.cosine_similarity(query[r:r + 1], k, dim=-1, eps=1e-8)
        w = torch.relu(cos)
        w = w / w.sum().clamp_min(1e-6)
        rows.append(values[a:b].T @ w)
    return torch.stack(rows)


def region_attention(query, keys, values, lo, hi):
    return region_attention_mean(query, keys, values, values, lo, hi)[0]


def test_region_attention_matches_loop_and_gradcheck():
    gen = torch.Generator().manual_seed(2)
    lo, hi = random_regions(30, 20, gen)
    q = torch.randn(20, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    k = torch.randn(30, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    v = torch.randn(30, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(region_attention(q, k, v, lo, hi), loop_attention(q, k, v, lo, hi))
    assert torch.autograd.gradcheck(lambda a, b, c: region_attention(a, b, c, lo, hi), (q, k, v))


def test_attention_weights_sum_to_one_or_zero():
    lo, hi = torch.tensor([0, 2]), torch.tensor([2, 4])
    keys = torch.tensor([[1.0, 0.0], [1.0, 1.0], [-1.0, 0.0], [-1.0, -1.0]])
    query = torch.tensor([[1.0, 0.0], [1.0, 0.0]])  # the second region points away: all weights 0
    ones = torch.ones(4, 1)  # attending to ones gives the sum of the weights
    total = region_attention(query, keys, ones, lo, hi)
    assert torch.allclose(total[0], torch.tensor(1.0))
    assert total[1].abs().sum() == 0


def test_region_attention_crowded_bins():
    """Many regions starting at the same snippet (extended regions clipped to a video's start) overflow
    their bin into extra tiles; lengths of every size group, starts near the end (windows past S)."""
    gen = torch.Generator().manual_seed(3)
    s = 40
    lo = torch.cat([torch.zeros(12, dtype=torch.long), torch.randint(0, s, (20,), generator=gen),
                    torch.full((5,), s - 1)])
    length = torch.randint(1, 20, (lo.numel(),), generator=gen)
    hi = torch.minimum(lo + length, torch.tensor(s))
    q = torch.randn(lo.numel(), 5, generator=gen, dtype=torch.float64, requires_grad=True)
    k = torch.randn(s, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    v = torch.randn(s, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(region_attention(q, k, v, lo, hi), loop_attention(q, k, v, lo, hi))
    assert torch.autograd.gradcheck(lambda a, b, c: region_attention(a, b, c, lo, hi), (q, k, v))
