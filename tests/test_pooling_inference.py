"""The torch region pooling without autograd (the backend where the kernel is not: GPU, no compiler)
against obvious per-region loops: the sparse table's values-only levels (long inputs, one-snippet
regions, regions to the last snippet) and the attention with the plain mean from the same tiles
(crowded bins, windows past the last snippet, values that are column slices); and the same bits as
with autograd."""
from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_ops_pooling import loop_attention, loop_max, region_attention

from dcltal.ops.pooling import region_attention_mean, region_max


def regions(s: int, r: int, max_len: int, gen: torch.Generator, crowd: int = 0):
    lo = torch.randint(0, s, (r,), generator=gen)
    lo[:crowd] = 0  # extended regions clipped to the first snippet
    hi = torch.minimum(lo + torch.randint(1, max_len + 1, (r,), generator=gen), torch.tensor(s))
    return lo, hi


@settings(max_examples=30, deadline=None)
@given(s=st.integers(1, 1200), r=st.integers(1, 120), max_len=st.integers(1, 400), seed=st.integers(0, 10_000),
       levels=st.integers(1, 4))
def test_region_max_without_autograd_matches_loop(s, r, max_len, seed, levels):
    gen = torch.Generator().manual_seed(seed)
    lo, hi = regions(s, r, max_len, gen)
    x = torch.randint(0, levels, (s, 3), generator=gen).float()  # ties
    with torch.no_grad():
        torch.testing.assert_close(region_max(x, lo, hi), loop_max(x, lo, hi), rtol=0, atol=0)


def test_region_max_with_long_and_one_snippet_regions():
    gen = torch.Generator().manual_seed(0)
    s = 785
    lo = torch.cat([torch.arange(186, 261), torch.tensor([0, 5, s - 1, 3])])
    hi = torch.cat([torch.arange(186, 261) + 70, torch.tensor([s, 5 + 128, s, 4])])
    x = torch.randn(s, 4, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(region_max(x, lo, hi), loop_max(x, lo, hi), rtol=0, atol=0)


def loop_mean(values, lo, hi):
    return torch.stack([values[a:b].mean(0) for a, b in zip(lo.tolist(), hi.tolist())])


@settings(max_examples=30, deadline=None)
@given(s=st.integers(1, 900), r=st.integers(1, 150), max_len=st.integers(1, 60), seed=st.integers(0, 10_000),
       crowd=st.integers(0, 20))
def test_attention_and_mean_without_autograd_match_loops(s, r, max_len, seed, crowd):
    gen = torch.Generator().manual_seed(seed)
    lo, hi = regions(s, r, max_len, gen, crowd=min(crowd, r))
    q = torch.randn(r, 5, generator=gen, dtype=torch.float64)
    k = torch.randn(s, 5, generator=gen, dtype=torch.float64)
    v = torch.randn(s, 6, generator=gen, dtype=torch.float64)
    ref, ref_mean = loop_attention(q, k, v, lo, hi), loop_mean(v, lo, hi)
    with torch.no_grad():
        a, m = region_attention_mean(q, k, k, k, lo, hi)  # keys = values = mean values (one gather)
        torch.testing.assert_close(a, loop_attention(q, k, k, lo, hi))
        torch.testing.assert_close(m, loop_mean(k, lo, hi))
        a, m = region_attention_mean(q, k, v[:, :2], v[:, 2:], lo, hi)  # column slices, two products
        torch.testing.assert_close(a, ref[:, :2])
        torch.testing.assert_close(m, ref_mean[:, 2:])
        torch.testing.assert_close(region_attention(q, k, v, lo, hi), ref)


def test_attention_mean_with_autograd_matches_loops_and_gradcheck():
    gen = torch.Generator().manual_seed(4)
    lo, hi = regions(60, 25, 20, gen, crowd=5)
    q = torch.randn(25, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    k = torch.randn(60, 4, generator=gen, dtype=torch.float64, requires_grad=True)
    v = torch.randn(60, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    a, m = region_attention_mean(q, k, v, v, lo, hi)
    torch.testing.assert_close(a, loop_attention(q, k, v, lo, hi))
    torch.testing.assert_close(m, loop_mean(v, lo, hi))
    assert torch.autograd.gradcheck(lambda a_, b_, c_: torch.cat(region_attention_mean(a_, b_, c_, c_, lo, hi), 1),
                                    (q, k, v))


def test_without_autograd_the_same_bits_as_with_it():
    """One torch path: inference (the GPU's, or the CPU's without the kernel) computes what training does."""
    gen = torch.Generator().manual_seed(5)
    lo, hi = regions(300, 80, 70, gen, crowd=6)
    k = torch.randn(300, 8, generator=gen).relu().requires_grad_(True)
    v = torch.randn(300, 6, generator=gen, requires_grad=True)
    with_grad = (region_max(k, lo, hi), *region_attention_mean(region_max(k, lo, hi), k, v, v, lo, hi))
    with torch.no_grad():
        f_o = region_max(k, lo, hi)
        without = (f_o, *region_attention_mean(f_o, k, v, v, lo, hi))
    for a, b in zip(with_grad, without):
        assert torch.equal(a.detach(), b)
