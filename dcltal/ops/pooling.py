"""Pooling of snippet features over snippet ranges ("regions"), each snippet computed once (DESIGN §3).

A region is a half-open range ``[lo, hi)`` of rows of a packed ``[S, D]`` feature matrix (several
videos end to end; a region never crosses a video). All functions take ``lo``/``hi`` as ``[R]``
long tensors with ``0 <= lo < hi <= S`` and return one row a region.

- :func:`pool_regions`: the aggregation's pooling (Eq. 6-8 and Eq. 10's mean), the one entry. It
  picks the backend (:func:`backend`): the compiled kernel (:mod:`dcltal.ops.native`) on the CPU
  without autograd, else torch: :func:`region_max` and :func:`region_attention_mean`.
- :func:`region_max`: Eq. 6 by a sparse table (``log2 K_max`` levels of pairwise maxima, two
  look-ups a region). Ties go to the first snippet, as ``argmax`` does, so the gradient is that of
  ``x[lo:hi].max(0)`` taken at the first maximum.
- :func:`region_attention_mean`: Eq. 7-8's attention-weighted sum and the plain mean, computed in
  tiles of nearby regions with batched matrix products (see there why not pair by pair).
- :func:`region_sum` / :func:`region_mean`: prefix sums (float64, so a difference of two large
  sums over a long video keeps its precision).
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from dcltal.ops import native

COS_EPS = 1e-8  # norms are clamped to this before dividing (cosine of a zero vector is 0)
ATTENTION_EPS = 1e-6  # the attention weights' sum is clamped to this (a region of all-zero weights)


def backend(*tensors: torch.Tensor) -> str:
    """The implementation :func:`pool_regions` runs for these tensors, decided here only: ``"kernel"``
    (the compiled pass of :mod:`dcltal.ops.native`) where all are floating point on the CPU, no
    gradient is wanted and the kernel could be built (it is built once a process); else ``"torch"``
    (autograd, GPU, no C compiler, ``DCLTAL_NATIVE=0``): the same numbers, slower on the CPU."""
    if any(t.device.type != "cpu" or not t.dtype.is_floating_point for t in tensors):
        return "torch"
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return "torch"
    return "kernel" if native.library() is not None else "torch"


def pool_regions(keys: torch.Tensor, values: torch.Tensor, mean_values: torch.Tensor, lo: torch.Tensor,
                 hi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(f_O [R, D], attended [R, E], mean [R, E2]) of the regions ``[lo, hi)`` of ``keys`` [S, D]: the
    max (Eq. 6); the sum of ``values`` [S, E] weighted by a(t) = ReLU(cos(f_O, keys[t])) divided by its
    sum over the region (Eq. 7, as ContextLoc normalises it; Eq. 8's attended term); the mean of
    ``mean_values`` [S, E2] (Eq. 10's local term). The kernel pools float32 and float64 inputs as they
    are and any other mixture (bfloat16 under autocast) in float32, the outputs too."""
    if backend(keys, values, mean_values) == "torch":
        f_o = region_max(keys, lo, hi)
        return (f_o, *region_attention_mean(f_o, keys, values, mean_values, lo, hi))
    same = values.dtype == mean_values.dtype == keys.dtype
    dtype = keys.dtype if same and keys.dtype in native.FUNCTIONS else torch.float32
    keys, values, mean_values = (t.to(dtype) if t.stride(-1) == 1 else t.to(dtype).contiguous()
                                 for t in (keys, values, mean_values))
    return native.region_pool(keys, values, mean_values, lo.long().contiguous(), hi.long().contiguous(),
                              cos_eps=COS_EPS, attention_eps=ATTENTION_EPS)


def _levels(lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """[R] sparse-table level of each region: floor(log2(length))."""
    length = (hi - lo).clamp_min(1)
    return torch.floor(torch.log2(length.double())).long()


def region_max(x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """[R, D] max over each region of ``x`` [S, D] (Eq. 6), by a sparse table over the whole of ``x``.

    Level k of the table holds max(x[t : t + 2^k]) for every t; a region of length K with
    2^k <= K < 2^(k+1) is the max of two level-k entries (at lo and hi - 2^k, overlapping windows).
    Levels are built one after the other and the regions of a level answered before the next one, so
    only two levels ([S, D] each) live at a time. Without autograd only values are tabled; with it the
    table also carries the row of the FIRST maximum (a tie keeps the earlier snippet), and the result is
    ``x.gather(0, index)``: the gradient of ``x[lo:hi].max(0)`` taken at the first maximum, one snippet a
    channel, as ``argmax`` picks it.
    """
    r, s, d = lo.shape[0], x.shape[0], x.shape[1]
    if r == 0:
        return x.new_zeros(0, d)
    level = _levels(lo, hi)
    top = int(level.max())
    need_grad = torch.is_grad_enabled() and x.requires_grad
    with torch.no_grad():
        values = x.detach()  # level 0
        index = torch.arange(s, device=x.device, dtype=torch.int32).unsqueeze(1).expand(s, d) if need_grad else None
        out = x.new_empty(r, d)
        arg = torch.empty(r, d, dtype=torch.long, device=x.device) if need_grad else None
        for k in range(top + 1):
            if k > 0:  # level k from level k - 1
                half = 1 << (k - 1)
                left, right = values[:-half], values[half:]
                if need_grad:
                    take_right = right > left  # strict: a tie keeps the left (earlier) snippet
                    values = torch.where(take_right, right, left)
                    index = torch.where(take_right, index[half:], index[:-half])
                else:
                    values = torch.maximum(left, right)
            rows = torch.nonzero(level == k).squeeze(1)
            if rows.numel() == 0:
                continue
            a, b = lo[rows], hi[rows] - (1 << k)  # the two windows of 2^k covering [lo, hi)
            va, vb = values[a], values[b]
            if need_grad:
                take_b = vb > va
                out[rows] = torch.where(take_b, vb, va)
                arg[rows] = torch.where(take_b, index[b], index[a]).long()
            else:
                out[rows] = torch.maximum(va, vb)
    if need_grad:
        return x.gather(0, arg)
    return out


def region_sum(x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """[R, D] sum over each region of ``x`` [S, D], by prefix sums in float64."""
    prefix = F.pad(torch.cumsum(x.double(), dim=0), (0, 0, 1, 0))  # [S + 1, D], row t = sum of x[:t]
    return (prefix[hi] - prefix[lo]).to(x.dtype)


def region_mean(x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """[R, D] mean over each region of ``x`` [S, D]."""
    return region_sum(x, lo, hi) / (hi - lo).unsqueeze(1).to(x.dtype)


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp_min(COS_EPS)


def cosine_rows(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise cosine similarity of ``a`` and ``b`` [M, D] -> [M], norms clamped to COS_EPS."""
    return (a * b).sum(-1) / (a.norm(dim=-1).clamp_min(COS_EPS) * b.norm(dim=-1).clamp_min(COS_EPS))


class _Tiles(NamedTuple):
    """Regions placed in tiles: region ``rows[i]`` sits in slot ``slot[i]`` of tile ``tile[i]``; a tile
    has ``size`` slots and reads the window of ``width`` snippets that begins at its ``starts`` entry."""
    rows: torch.Tensor  # [n] regions
    tile: torch.Tensor  # [n]
    slot: torch.Tensor  # [n]
    starts: torch.Tensor  # [tiles] first snippet of each tile's window
    size: int
    width: int


def _tiles(lo: torch.Tensor, rows: torch.Tensor, length: int) -> _Tiles:
    """Tiles for the regions ``rows``, all of ``length <= K < 2 length`` snippets: binned by start into
    bins of ``length`` snippets (a bin's regions lie inside the 3 ``length`` snippets from its start),
    up to G regions of one bin a tile, G the mean number of regions of a non-empty bin (a crowded bin,
    e.g. of the extended regions clipped to a video's first snippet, fills several tiles)."""
    bins = lo[rows] // length
    order = torch.argsort(bins, stable=True)
    bins = bins[order]
    rank = torch.arange(bins.numel(), device=lo.device) - torch.searchsorted(bins, bins)  # within its bin
    size = -(-rows.numel() // int(torch.unique_consecutive(bins).numel()))
    per_bin = int(rank.max()) // size + 1
    chunks, tile = torch.unique(bins * per_bin + rank // size, return_inverse=True)
    return _Tiles(rows[order], tile, rank % size, chunks // per_bin * length, size, 3 * length)


def _attend(tiles: _Tiles, unit_query: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, *, keys: torch.Tensor,
            norms: torch.Tensor, values: torch.Tensor, mean_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(attended [n, E], mean [n, E2]) of the regions ``tiles.rows``, from each tile's window of raw
    ``keys`` [tiles, W, D], key ``norms`` [tiles, W], ``values`` [tiles, W, E] and ``mean_values``
    [tiles, W, E2]; ``unit_query`` [R, D] holds every region's unit f_O."""
    n_tiles, width, d = keys.shape
    rows, tile, slot = tiles.rows, tiles.tile, tiles.slot
    query = unit_query.new_zeros(n_tiles, tiles.size, d).index_put((tile, slot), unit_query[rows])  # empty slots 0
    column = tiles.starts[tile].unsqueeze(1) + torch.arange(width, device=lo.device)  # [n, W] snippet of each column
    inside = torch.zeros(n_tiles, tiles.size, width, dtype=torch.bool, device=lo.device)
    inside[tile, slot] = (column >= lo[rows].unsqueeze(1)) & (column < hi[rows].unsqueeze(1))
    cos = torch.bmm(query, keys.transpose(1, 2)) / norms.unsqueeze(1)  # [tiles, G, W]: unit query . key / |key|
    w = torch.where(inside, F.relu(cos), 0.0)
    w = (w / w.sum(-1, keepdim=True).clamp_min(ATTENTION_EPS)).to(values.dtype)
    count = torch.ones(n_tiles, tiles.size, 1, dtype=mean_values.dtype, device=lo.device)
    count[tile, slot] = (hi[rows] - lo[rows]).to(mean_values.dtype).unsqueeze(1)
    uniform = inside.to(mean_values.dtype) / count  # [tiles, G, W]: 1 / K on the region's snippets
    return (torch.bmm(w, values)[tile, slot].to(unit_query.dtype),
            torch.bmm(uniform, mean_values)[tile, slot].to(unit_query.dtype))


def region_attention_mean(query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mean_values: torch.Tensor,
                          lo: torch.Tensor, hi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """([R, E] sum over each region of a(t) * values[t], [R, E2] mean of ``mean_values`` [S, E2] over
    each region): Eq. 8's attended term (a(t) as in :func:`pool_regions`, of the queries [R, D] and
    ``keys`` [S, D]; ``values`` [S, E]) and Eq. 10's local term, from the same tiles.

    Computed in tiles rather than pair by pair: gathering a key row for every (region, snippet) pair
    moves M x D floats (M = sum of region lengths; ~100k pairs x 1024 a THUMOS video), which costs far
    more than the arithmetic. Regions are grouped by length (L <= K < 2L, L a power of 2) and placed in
    tiles of nearby regions (:func:`_tiles`); two batched matrix products over the tiles give the
    cosines [tiles, G, W] and the weighted sums [tiles, G, E], with a mask for the snippets outside
    each region; the means are one more product with the weights 1/K on the mask. Keys are not
    normalised: the cosine is the unit query's product with the key divided by the key's norm (a [S]
    vector), which saves writing unit keys. All groups' windows are gathered in one indexing op (one
    ``index_add`` in the backward); windows past the last snippet are gathered with clamped indices
    (masked out), so nothing is padded.
    """
    r, s, d = lo.shape[0], keys.shape[0], keys.shape[1]
    attended = values.new_zeros(r, values.shape[1])
    mean = mean_values.new_zeros(r, mean_values.shape[1])
    if r == 0:
        return attended, mean
    unit_query = _unit(query).to(values.dtype)  # [R, D]
    norms = keys.norm(dim=-1).clamp_min(COS_EPS)  # [S]
    level = _levels(lo, hi)
    groups = [_tiles(lo, torch.nonzero(level == b).squeeze(1), 1 << b) for b in torch.unique(level).tolist()]
    index = torch.cat([(g.starts.unsqueeze(1) + torch.arange(g.width, device=lo.device)).flatten()
                       for g in groups]).clamp_max(s - 1)
    sizes = [g.starts.numel() * g.width for g in groups]
    key_windows, norm_windows = keys[index].split(sizes), norms[index].split(sizes)
    value_windows = key_windows if values is keys else values[index].split(sizes)
    mean_windows = value_windows if mean_values is values else mean_values[index].split(sizes)
    for g, kw, nw, vw, mw in zip(groups, key_windows, norm_windows, value_windows, mean_windows):
        a, m = _attend(g, unit_query, lo, hi, keys=kw.view(-1, g.width, d), norms=nw.view(-1, g.width),
                       values=vw.view(-1, g.width, vw.shape[-1]), mean_values=mw.view(-1, g.width, mw.shape[-1]))
        attended.index_copy_(0, g.rows, a)
        mean.index_copy_(0, g.rows, m)
    return attended, mean
