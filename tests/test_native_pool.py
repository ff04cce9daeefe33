"""The compiled region pooling (dcltal/ops/native) against per-region loops: the max (Eq. 6), the
attention-weighted sum (Eq. 7-8) and the mean (Eq. 10) of each region, in float64 and float32, with
one-snippet regions, regions at both ends, all-zero snippets, values that are column slices, and any
thread count; its checks of its inputs (ValueError before C reads them); its build and the torch path
it falls back to."""
from __future__ import annotations

import os

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from test_ops_pooling import loop_attention, loop_max

from dcltal.model.aggregate import ContextAggregator
from dcltal.ops import native, pooling
from dcltal.ops.pooling import ATTENTION_EPS, COS_EPS, pool_regions

pytestmark = pytest.mark.skipif(native.library() is None, reason="no C compiler: the torch path runs instead")


def loop_mean(x, lo, hi):
    return torch.stack([x[a:b].mean(0) for a, b in zip(lo.tolist(), hi.tolist())])


def case(s, r, max_len, seed, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    lo = torch.randint(0, s, (r,), generator=gen)
    lo[: r // 8] = 0  # regions clipped to the first snippet
    hi = torch.minimum(lo + torch.randint(1, max_len + 1, (r,), generator=gen), torch.tensor(s))
    hi[-1:] = s  # and one to the last
    keys = torch.randn(s, 7, generator=gen, dtype=dtype).relu()
    keys[::5] = 0  # all-zero snippets: cosine 0, as torch's clamped norms give
    wide = torch.randn(s, 9, generator=gen, dtype=dtype)
    return keys, wide[:, :4], wide[:, 4:], lo, hi  # values and mean values: column slices of one tensor


def pool(keys, values, mean_values, lo, hi):
    return native.region_pool(keys, values, mean_values, lo, hi, cos_eps=COS_EPS, attention_eps=ATTENTION_EPS)


@settings(max_examples=40, deadline=None)
@given(s=st.integers(1, 300), r=st.integers(1, 60), max_len=st.integers(1, 80), seed=st.integers(0, 10_000))
def test_matches_loops_float64(s, r, max_len, seed):
    keys, values, mean_values, lo, hi = case(s, r, max_len, seed)
    f_o, att, mean = pool(keys, values, mean_values, lo, hi)
    torch.testing.assert_close(f_o, loop_max(keys, lo, hi), rtol=0, atol=0)
    torch.testing.assert_close(att, loop_attention(f_o, keys, values, lo, hi), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(mean, loop_mean(mean_values, lo, hi), rtol=1e-10, atol=1e-12)


def test_float32_agrees_with_float64():
    keys, values, mean_values, lo, hi = case(400, 300, 90, seed=3)
    wide = [pool(keys, values, mean_values, lo, hi), pool(keys.float(), values.float(), mean_values.float(), lo, hi)]
    for a, b in zip(*wide):
        assert b.dtype == torch.float32
        torch.testing.assert_close(b.double(), a, rtol=1e-5, atol=1e-5)


def test_other_dtypes_pool_in_float32():
    keys, values, mean_values, lo, hi = case(200, 100, 40, seed=6)
    as32 = pool_regions(keys.float(), values.float(), mean_values.float(), lo, hi)
    mixed = pool_regions(keys.bfloat16(), values.float(), mean_values.bfloat16(), lo, hi)  # bfloat16 under autocast
    exact = pool(keys.bfloat16().float(), values.float(), mean_values.bfloat16().float(), lo, hi)
    for a, b in zip(mixed, exact):
        assert a.dtype == torch.float32 and torch.equal(a, b)
    assert (as32[0] - mixed[0]).abs().max() > 0  # the bfloat16 rounding is really there


def test_same_numbers_on_any_thread_count():
    keys, values, mean_values, lo, hi = case(500, 400, 60, seed=4)
    before = torch.get_num_threads()
    try:
        outs = []
        for n in (1, 2, 3):  # each region is computed by one thread, whole: identical bits
            torch.set_num_threads(n)
            outs.append(pool(keys, values, mean_values, lo, hi))
    finally:
        torch.set_num_threads(before)
    for other in outs[1:]:
        for a, b in zip(outs[0], other):
            assert torch.equal(a, b)


def test_the_kernel_runs_only_without_autograd_on_float_cpu_tensors():
    x = torch.randn(4, 3)
    assert pooling.backend(x, x, x) == "kernel" and pooling.backend(x.bfloat16(), x, x.double()) == "kernel"
    assert pooling.backend(x, x.long(), x) == "torch"
    w = x.clone().requires_grad_(True)
    assert pooling.backend(w, w, w) == "torch"
    with torch.no_grad():
        assert pooling.backend(w, w, w) == "kernel"


def test_pool_regions_is_the_kernel_where_it_runs():
    keys, values, mean_values, lo, hi = case(120, 50, 30, seed=8)
    for a, b in zip(pool_regions(keys, values, mean_values, lo, hi), pool(keys, values, mean_values, lo, hi)):
        assert torch.equal(a, b)


@pytest.mark.parametrize("bad, match", [
    (dict(lo=[0, 5], hi=[3, 5]), r"region 1 is \[5, 5\)"),  # empty: memset of a negative length before the check
    (dict(lo=[4, 0], hi=[3, 2]), r"region 0 is \[4, 3\)"),
    (dict(lo=[0, 1], hi=[3, 11]), r"region 1 is \[1, 11\), not within 0 <= lo < hi <= 10"),  # past the buffer
    (dict(lo=[-1, 0], hi=[3, 2]), r"region 0 is \[-1, 3\)"),
    (dict(lo=[0, 1], hi=[3]), "lo has 2 regions, hi 1"),
    (dict(lo=[0.0], hi=[3.0]), "lo must be a contiguous 1-D int64"),
    (dict(values=torch.zeros(9, 2)), "values has 9 rows, keys 10"),
    (dict(mean_values=torch.zeros(10, 2, dtype=torch.float64)), "mean_values must be 2-D float32"),
    (dict(keys=torch.zeros(10, 3, dtype=torch.float16)), "keys must be 2-D float32 or float64"),
    (dict(values=torch.zeros(2, 10).T), "values's columns are not contiguous"),
    (dict(keys=torch.zeros(10, 3, device="meta")), "keys is on meta, not the CPU"),
])
def test_bad_inputs_stop_before_the_kernel(bad, match):
    args = dict(keys=torch.ones(10, 3), values=torch.ones(10, 2), mean_values=torch.ones(10, 2), lo=[0, 1], hi=[3, 4])
    args.update(bad)
    for end in ("lo", "hi"):
        if not isinstance(args[end], torch.Tensor):
            args[end] = torch.tensor(args[end])
    with pytest.raises(ValueError, match=match):
        native.region_pool(**args, cos_eps=COS_EPS, attention_eps=ATTENTION_EPS)


@pytest.mark.parametrize("pool_first", [True, False])
def test_aggregator_gives_the_torch_paths_numbers(monkeypatch, pool_first):
    """The aggregator with the kernel (no autograd) and with torch's path (DCLTAL_NATIVE=0), both
    branches: pooling the features first (fewer regions than snippets) and mapping every snippet first."""
    keys, _, _, lo, hi = case(40 if pool_first else 12, 20, 10, seed=5)
    torch.manual_seed(0)
    agg = ContextAggregator(keys.shape[1] + 1).double()
    feats = torch.cat([keys, keys[:, :1]], dim=1)
    video_max, video = feats.amax(0, keepdim=True), torch.zeros(lo.shape[0], dtype=torch.long)
    with torch.no_grad():
        fast = agg(feats, lo, hi, video_max, video)
        monkeypatch.setenv("DCLTAL_NATIVE", "0")
        native.library.cache_clear()
        try:
            assert pooling.backend(feats) == "torch"
            slow = agg(feats, lo, hi, video_max, video)
        finally:
            native.library.cache_clear()
    torch.testing.assert_close(fast, slow, rtol=1e-10, atol=1e-12)


def test_build_is_cached_and_a_failed_build_falls_back(monkeypatch, tmp_path):
    monkeypatch.setenv("DCLTAL_CACHE_DIR", str(tmp_path))
    native.library.cache_clear()
    umask = os.umask(0o002)  # a group-writable default must not leave the build untrusted
    try:
        assert native.library() is not None
        os.umask(umask)
        built = sorted(tmp_path.iterdir())
        assert len(built) == 2 and built[0].name.startswith("region_pool-")  # no temporary file left
        assert built[1].name == built[0].name + ".sha256"  # the digest the build recorded
        assert all(f.stat().st_mode & 0o077 == 0 for f in built)
        native.library.cache_clear()
        stamp = built[0].stat().st_mtime_ns
        assert native.library() is not None and built[0].stat().st_mtime_ns == stamp  # reused, not rebuilt

        monkeypatch.setenv("DCLTAL_CACHE_DIR", str(tmp_path / "fresh"))
        monkeypatch.setenv("CC", "false")  # a compiler that always fails
        native.library.cache_clear()
        with pytest.warns(RuntimeWarning, match="could not build the region pooling kernel"):
            assert native.library() is None
        assert pooling.backend(torch.zeros(2, 2)) == "torch"
        left = [f.name for f in (tmp_path / "fresh").iterdir()]
        assert len(left) == 1 and left[0].endswith(".failed")  # the failure's marker, no half-written file
    finally:
        os.umask(umask)
        native.library.cache_clear()


def test_loading_keeps_subnormal_floats():
    """The kernel is built without -ffast-math's start-up code, which would switch the whole process
    to flushing subnormal floats to zero (torch's numbers and hypothesis's checks would change)."""
    assert native.library() is not None
    tiny = torch.tensor([torch.finfo(torch.float64).tiny], dtype=torch.float64)
    assert (tiny / 4).item() > 0
    assert (torch.tensor([torch.finfo(torch.float32).tiny]) / 4).item() > 0
