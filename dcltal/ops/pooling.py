"""Pooling of snippet features over snippet ranges ("regions"), each snippet computed once (DESIGN §3).

A region is a half-open range ``[lo, hi)`` of rows of a packed ``[S, D]`` feature matrix (several
videos end to end; a region never crosses a video). All functions take ``lo``/``hi`` as ``[R]``
long tensors with ``hi > lo`` and return one row a region.

- :func:`region_max`: Eq. 6 by a sparse table (``log2 K_max`` levels of pairwise maxima, two
  look-ups a region). Ties go to the first snippet, as ``argmax`` does, so the gradient is that of
  ``x[lo:hi].max(0)`` taken at the first maximum.
- :func:`region_sum` / :func:`region_mean`: prefix sums (float64, so a difference of two large
  sums over a long video keeps its precision).
- :func:`attention_weights`: Eq. 7, the attention weights over the flat list of (region, snippet)
  pairs, normalised per region with ``index_add_`` (what the attention plots show);
- :func:`region_attention`: Eq. 7-8, the attention-weighted sum, computed in tiles of nearby regions
  with batched matrix products (the pair list's gathers cost more than the arithmetic; see there).
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


def region_max(x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """[R, D] max over each region of ``x`` [S, D] (Eq. 6), by a sparse table.

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


def region_pairs(lo: torch.Tensor, hi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The flat (region, snippet) pair list: ([M] region of each pair, [M] snippet of each pair),
    M = sum of the region lengths, pairs of one region contiguous and in snippet order."""
    length = hi - lo
    region = torch.repeat_interleave(torch.arange(lo.shape[0], device=lo.device), length)  # [M]
    first = torch.cumsum(length, 0) - length  # [R] first pair of each region
    snippet = torch.arange(region.shape[0], device=lo.device) - first[region] + lo[region]  # [M]
    return region, snippet


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp_min(COS_EPS)


def cosine_rows(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise cosine similarity of ``a`` and ``b`` [M, D] -> [M], norms clamped to COS_EPS."""
    return (a * b).sum(-1) / (a.norm(dim=-1).clamp_min(COS_EPS) * b.norm(dim=-1).clamp_min(COS_EPS))


def attention_weights(query: torch.Tensor, keys: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor):
    """Eq. 7 with ContextLoc's normalisation: a(t) = ReLU(cos(query_r, keys[t])) / sum over the region.

    query [R, D], keys [S, D] -> (weights [M], pair region [M], pair snippet [M]).
    """
    region, snippet = region_pairs(lo, hi)
    q, k = _unit(query), _unit(keys)  # [R, D] unit queries, [S, D] unit keys (once per snippet)
    w = F.relu((q[region] * k[snippet]).sum(-1))  # [M]
    total = torch.zeros(lo.shape[0], dtype=w.dtype, device=w.device).index_add_(0, region, w)  # [R]
    return w / total.clamp_min(ATTENTION_EPS)[region], region, snippet


def _attend(q, lo, hi, rows, tile, slot, starts, kw, vw, g):
    """Attention of the regions ``rows`` placed at (tile, slot) of tiles whose windows of snippets
    begin at ``starts`` [B] and whose unit keys / values are ``kw`` [B, W, D] / ``vw`` [B, W, E].
    -> [len(rows), E]."""
    n_tiles, width, d = kw.shape
    qt = q.new_zeros(n_tiles, g, d).index_put((tile, slot), q[rows])  # [B, G, D], empty slots zero
    col = starts[tile].unsqueeze(1) + torch.arange(width, device=lo.device)  # [R_b, W] snippet of each column
    inside = torch.zeros(n_tiles, g, width, dtype=torch.bool, device=lo.device)
    inside[tile, slot] = (col >= lo[rows].unsqueeze(1)) & (col < hi[rows].unsqueeze(1))
    cos = torch.bmm(qt, kw.transpose(1, 2))  # [B, G, W]
    w = torch.where(inside, F.relu(cos), 0.0)
    w = w / w.sum(-1, keepdim=True).clamp_min(ATTENTION_EPS)
    return torch.bmm(w.to(vw.dtype), vw)[tile, slot].to(q.dtype)  # [R_b, E]


def region_attention(query, keys, values, lo, hi) -> torch.Tensor:
    """[R, E] sum over each region of a(t) * values[t]: the W_a F a^T term of Eq. 8, with ``values`` =
    W_a F computed once per snippet ([S, E]) and a(t) as :func:`attention_weights` (query [R, D],
    keys [S, D]).

    Computed in tiles rather than pair by pair: gathering a key row for every (region, snippet) pair
    moves M x D floats (M = sum of region lengths; ~100k pairs x 1024 a THUMOS video), which costs far
    more than the arithmetic. Regions are grouped by length (L <= K < 2L, L a power of 2) and, within
    a group, by start into bins of L snippets: bin j holds the regions starting in [jL, (j+1)L), which
    all lie inside the window of snippets [jL, jL + 3L). A tile is up to G regions of one bin (G = the
    mean number of regions of a non-empty bin; a crowded bin, e.g. of the extended regions clipped to
    a video's first snippet, fills several tiles); two batched matrix products over the tiles give
    the cosines [tiles, G, W] and the weighted sums [tiles, G, E], with a mask for the snippets
    outside each region. Where most bins hold regions and no gradient is needed (inference over all
    proposals of a video), the first tile of every bin reads its window as a strided view of the keys
    and values (overlapping windows, no copy); otherwise the windows of the tiles are gathered (their
    backward is an ``index_add``, much cheaper than a strided view's).
    """
    r, s, d, e = lo.shape[0], keys.shape[0], keys.shape[1], values.shape[1]
    out = values.new_zeros(r, e)
    if r == 0:
        return out
    q = _unit(query).to(values.dtype)  # [R, D]: unit queries, so a dot product with a unit key is a cosine
    level = _levels(lo, hi)
    top = int(level.max())
    pad_rows = 3 << top  # the widest window reaches this far past the last snippet
    k = F.pad(_unit(keys), (0, 0, 0, pad_rows))  # [S + pad, D]
    v = F.pad(values, (0, 0, 0, pad_rows))  # [S + pad, E]
    plans = []  # tiles whose windows are gathered: (rows, tile, slot, window starts, G, W)
    no_grad = not torch.is_grad_enabled() or not (query.requires_grad or keys.requires_grad or values.requires_grad)
    for b in torch.unique(level).tolist():
        step, width = 1 << b, 3 << b
        rows = torch.nonzero(level == b).squeeze(1)  # [R_b]
        bins = lo[rows] // step
        order = torch.argsort(bins, stable=True)
        rows, bins = rows[order], bins[order]
        rank = torch.arange(rows.numel(), device=lo.device) - torch.searchsorted(bins, bins)  # [R_b] place in its bin
        n_bins, n_full = -(-s // step), int(torch.unique_consecutive(bins).numel())
        g = -(-rows.numel() // n_full)  # mean regions of a non-empty bin
        main = rank < g
        if no_grad and 2 * n_full >= n_bins:  # dense: first tiles of all bins on strided views
            kw = k.as_strided((n_bins, width, d), (step * d, d, 1))  # [bins, W, D] overlapping windows, a view
            vw = v.as_strided((n_bins, width, e), (step * e, e, 1))  # [bins, W, E]
            starts = torch.arange(n_bins, device=lo.device) * step
            out.index_copy_(0, rows[main], _attend(q, lo, hi, rows[main], bins[main], rank[main], starts, kw, vw, g))
            rows, bins, rank = rows[~main], bins[~main], rank[~main]
            if rows.numel() == 0:
                continue
        per_bin = int(rank.max()) // g + 1
        chunks, tile = torch.unique(bins * per_bin + rank // g, return_inverse=True)  # tile of each region
        starts = chunks // per_bin * step  # [tiles] first snippet of each tile's window
        plans.append((rows, tile, rank % g, starts, g, width))
    if plans:  # one gather for all length groups' windows (so one index_add in the backward)
        windows = [(st.unsqueeze(1) + torch.arange(w, device=lo.device)).flatten() for _, _, _, st, _, w in plans]
        sizes = [idx.numel() for idx in windows]
        kg = k[torch.cat(windows)].split(sizes)  # per group [tiles x W, D]; split, not slices: one gradient buffer
        vg = v[torch.cat(windows)].split(sizes)
        for (rows, tile, slot, starts, g, width), kw, vw in zip(plans, kg, vg):
            kw, vw = kw.view(-1, width, d), vw.view(-1, width, e)  # [tiles, W, D], [tiles, W, E]
            out.index_copy_(0, rows, _attend(q, lo, hi, rows, tile, slot, starts, kw, vw, g))
    return out
