"""Pooling of snippet features over snippet ranges ("regions"), each snippet computed once (DESIGN §3).

A region is a half-open range ``[lo, hi)`` of rows of a packed ``[S, D]`` feature matrix (several
videos end to end; a region never crosses a video). All functions take ``lo``/``hi`` as ``[R]``
long tensors with ``hi > lo`` and return one row a region.

- :func:`region_max`: Eq. 6 by a sparse table (``log2 K_max`` levels of pairwise maxima, two
  look-ups a region). Ties go to the first snippet, as ``argmax`` does, so the gradient is that of
  ``x[lo:hi].max(0)`` taken at the first maximum.
- :func:`region_sum` / :func:`region_mean`: prefix sums (float64, so a difference of two large
  sums over a long video keeps its precision).
- :func:`region_attention`: Eq. 7-8, a cosine attention over the region's snippets, computed over the
  flat list of (region, snippet) pairs with ``index_add_``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

COS_EPS = 1e-8  # norms are clamped to this before dividing (cosine of a zero vector is 0)
ATTENTION_EPS = 1e-6  # the attention weights' sum is clamped to this (a region of all-zero weights)


def _levels(lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """[R] sparse-table level of each region: floor(log2(length))."""
    length = (hi - lo).clamp_min(1)
    return torch.floor(torch.log2(length.double())).long()


def _sparse_table(x: torch.Tensor, top: int, with_index: bool):
    """Levels 0..top: level k row t holds max(x[t : t + 2^k]) ([S - 2^k + 1, D]); with the row index of
    the first maximum where ``with_index``."""
    values, index = [x], [None]
    if with_index:
        index[0] = torch.arange(x.shape[0], device=x.device).unsqueeze(1).expand_as(x)
    for k in range(1, top + 1):
        half = 1 << (k - 1)
        prev = values[-1]
        left, right = prev[:-half], prev[half:]
        take_right = right > left  # strict: a tie keeps the left (earlier) snippet
        values.append(torch.where(take_right, right, left))
        if with_index:
            index.append(torch.where(take_right, index[-1][half:], index[-1][:-half]))
    return values, index


def region_max(x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """[R, D] max over each region of ``x`` [S, D] (Eq. 6), by a sparse table.

    Without autograd only the values are tabled; with it, the table also carries the first argmax so
    the result is ``x.gather(0, index)`` and the gradient flows to exactly one snippet per channel.
    """
    r, d = lo.shape[0], x.shape[1]
    if r == 0:
        return x.new_zeros(0, d)
    level = _levels(lo, hi)
    top = int(level.max())
    need_grad = torch.is_grad_enabled() and x.requires_grad
    with torch.no_grad():
        values, index = _sparse_table(x.detach(), top, need_grad)
        out = x.new_empty(r, d)
        arg = torch.empty(r, d, dtype=torch.long, device=x.device) if need_grad else None
        for k in range(top + 1):
            rows = torch.nonzero(level == k).squeeze(1)
            if rows.numel() == 0:
                continue
            a, b = lo[rows], hi[rows] - (1 << k)  # two overlapping windows of 2^k cover [lo, hi)
            va, vb = values[k][a], values[k][b]
            take_b = vb > va
            out[rows] = torch.where(take_b, vb, va)
            if need_grad:
                arg[rows] = torch.where(take_b, index[k][b], index[k][a])
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


def region_pairs(lo: torch.Tensor, hi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The flat (region, snippet) pair list: ([M] region of each pair, [M] snippet of each pair),
    M = sum of the region lengths, pairs of one region contiguous and in snippet order."""
    length = hi - lo
    region = torch.repeat_interleave(torch.arange(lo.shape[0], device=lo.device), length)  # [M]
    first = torch.cumsum(length, 0) - length  # [R] first pair of each region
    snippet = torch.arange(region.shape[0], device=lo.device) - first[region] + lo[region]  # [M]
    return region, snippet


def cosine_rows(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise cosine similarity of ``a`` and ``b`` [M, D] -> [M], norms clamped to COS_EPS."""
    return (a * b).sum(-1) / (a.norm(dim=-1).clamp_min(COS_EPS) * b.norm(dim=-1).clamp_min(COS_EPS))


def attention_weights(query: torch.Tensor, keys: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor):
    """Eq. 7 with ContextLoc's normalisation: a(t) = ReLU(cos(query_r, keys[t])) / sum over the region.

    query [R, D], keys [S, D] -> (weights [M], pair region [M], pair snippet [M]).
    """
    region, snippet = region_pairs(lo, hi)
    q = query / query.norm(dim=-1, keepdim=True).clamp_min(COS_EPS)  # [R, D] unit queries
    k = keys / keys.norm(dim=-1, keepdim=True).clamp_min(COS_EPS)  # [S, D] unit keys, once per snippet
    w = F.relu((q[region] * k[snippet]).sum(-1))  # [M]
    total = torch.zeros(lo.shape[0], dtype=w.dtype, device=w.device).index_add_(0, region, w)  # [R]
    return w / total.clamp_min(ATTENTION_EPS)[region], region, snippet


def region_attention(query, keys, values, lo, hi) -> torch.Tensor:
    """[R, E] sum over each region of a(t) * values[t] (the W_a F a^T term of Eq. 8, with ``values`` =
    W_a F computed once per snippet, [S, E]); a(t) from :func:`attention_weights`."""
    a, region, snippet = attention_weights(query, keys, lo, hi)
    out = values.new_zeros(lo.shape[0], values.shape[1])
    return out.index_add_(0, region, a.unsqueeze(1) * values[snippet])
