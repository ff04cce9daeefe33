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
BLOCK_ROWS = 256  # snippets a block of the cache-blocked sparse table: with the window past it, ~1-2 MB a level
BLOCK_LEVELS = 6  # levels the blocked table builds at most (regions up to 127 snippets); longer: the whole table


def _levels(lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """[R] sparse-table level of each region: floor(log2(length))."""
    length = (hi - lo).clamp_min(1)
    return torch.floor(torch.log2(length.double())).long()


def region_max(x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """[R, D] max over each region of ``x`` [S, D] (Eq. 6), by a sparse table (:func:`_region_max_table`).
    Without autograd, regions shorter than 2^(BLOCK_LEVELS + 1) snippets use the cache-blocked table
    (:func:`_region_max_blocked`), the rest the whole-video one."""
    if (torch.is_grad_enabled() and x.requires_grad) or lo.shape[0] == 0:
        return _region_max_table(x, lo, hi)
    level = _levels(lo, hi)
    short = level <= BLOCK_LEVELS
    if bool(short.all()):
        return _region_max_blocked(x, lo, hi, level)
    if not bool(short.any()):
        return _region_max_table(x, lo, hi)
    out = x.new_empty(lo.shape[0], x.shape[1])
    rows, long_rows = torch.nonzero(short).squeeze(1), torch.nonzero(~short).squeeze(1)
    out[rows] = _region_max_blocked(x, lo[rows], hi[rows], level[rows])
    out[long_rows] = _region_max_table(x, lo[long_rows], hi[long_rows])
    return out


def _region_max_blocked(x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
    """[R, D] region max (no autograd) by a sparse table built block by block: the regions starting in a
    block of BLOCK_ROWS snippets need levels 1..k only over that block and the 2^(k+1) snippets after
    it, so each block's levels are built in one reused buffer that stays in cache (a whole-video table
    moves log2(K) [S, D] levels through memory)."""
    s, d = x.shape
    top = int(level.max())
    out = x.new_empty(lo.shape[0], d)
    ones = torch.nonzero(level == 0).squeeze(1)
    out[ones] = x[lo[ones]]  # one-snippet regions: the snippet itself
    if top == 0:
        return out
    slab = BLOCK_ROWS + (2 << top)  # rows of x a block reads: the block and the longest windows past it
    table = x.new_empty(top, slab, d)  # levels 1..top of one block
    block = lo // BLOCK_ROWS
    rows = torch.nonzero(level > 0).squeeze(1)
    rows = rows[torch.argsort(block[rows], stable=True)]  # regions of level >= 1, by block
    k, start = level[rows], block[rows] * BLOCK_ROWS
    a = (k - 1) * slab + lo[rows] - start  # flat row in `table` of the two level-k windows covering [lo, hi)
    b = (k - 1) * slab + hi[rows] - (1 << k) - start
    blocks, counts = torch.unique_consecutive(block[rows], return_counts=True)
    ends = torch.cumsum(counts, 0).tolist()
    flat = table.view(-1, d)
    first = 0
    for j, end, need in zip(blocks.tolist(), ends, _segment_max(k, counts).tolist()):
        base = j * BLOCK_ROWS
        prev, n = x[base:min(s, base + slab)], min(s, base + slab) - base
        for lv in range(1, need + 1):  # level lv from level lv - 1, over the slab's valid positions
            half, m = 1 << (lv - 1), n - (1 << lv) + 1
            if m <= 0:
                break
            prev = torch.maximum(prev[:m], prev[half:half + m], out=table[lv - 1, :m])
        seg = rows[first:end]
        out.index_copy_(0, seg, torch.maximum(flat[a[first:end]], flat[b[first:end]]))
        first = end
    return out


def _segment_max(values: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Max of each consecutive segment (``counts`` [B] long) of ``values`` [R]."""
    seg = torch.repeat_interleave(torch.arange(counts.numel(), device=values.device), counts)
    return torch.zeros(counts.numel(), dtype=values.dtype, device=values.device).scatter_reduce(
        0, seg, values, "amax", include_self=False)


def _region_max_table(x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
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


def _windows(x: torch.Tensor, n: int, width: int, step: int) -> torch.Tensor:
    """[n, width, *] overlapping windows of the rows of ``x`` (window j starts at row j * step): a
    strided view, no copy (``x`` may itself be a column slice; its strides are kept)."""
    return x.as_strided((n, width, *x.shape[1:]), (step * x.stride(0), *x.stride()))


def _attend(q, lo, hi, rows, tile, slot, starts, kw, nw, vw, mw, g):
    """Attention (and, given ``mw``, the plain mean) of the regions ``rows`` placed at (tile, slot) of
    tiles whose windows of snippets begin at ``starts`` [B]: raw keys ``kw`` [B, W, D], key norms ``nw``
    [B, W], values ``vw`` [B, W, E], mean values ``mw`` [B, W, E2] or None.
    -> ([len(rows), E], [len(rows), E2] or None)."""
    n_tiles, width, d = kw.shape
    qt = q.new_zeros(n_tiles, g, d).index_put((tile, slot), q[rows])  # [B, G, D], empty slots zero
    col = starts[tile].unsqueeze(1) + torch.arange(width, device=lo.device)  # [R_b, W] snippet of each column
    inside = torch.zeros(n_tiles, g, width, dtype=torch.bool, device=lo.device)
    inside[tile, slot] = (col >= lo[rows].unsqueeze(1)) & (col < hi[rows].unsqueeze(1))
    cos = torch.bmm(qt, kw.transpose(1, 2)) / nw.unsqueeze(1)  # [B, G, W]: unit query . key / |key|
    w = torch.where(inside, F.relu(cos), 0.0)
    w = (w / w.sum(-1, keepdim=True).clamp_min(ATTENTION_EPS)).to(vw.dtype)
    if mw is None:
        return torch.bmm(w, vw)[tile, slot].to(q.dtype), None
    count = torch.ones(n_tiles, g, 1, dtype=mw.dtype, device=lo.device)
    count[tile, slot] = (hi[rows] - lo[rows]).to(mw.dtype).unsqueeze(1)
    u = inside.to(mw.dtype) / count  # [B, G, W]: 1 / K on the region's snippets
    if mw is vw:  # one product for both weightings
        both = torch.bmm(torch.cat([w, u], dim=1), vw)  # [B, 2G, E]
        return both[tile, slot].to(q.dtype), both[tile, slot + g].to(q.dtype)
    return torch.bmm(w, vw)[tile, slot].to(q.dtype), torch.bmm(u, mw)[tile, slot].to(q.dtype)


def _bins(lo: torch.Tensor, step: int):
    """Regions (their ``lo`` [R]) binned by start into bins of ``step`` snippets -> (order [R] of the
    regions by bin, bin [R] in that order, rank [R] within the bin, number of non-empty bins)."""
    bins = lo // step
    order = torch.argsort(bins, stable=True)
    bins = bins[order]
    rank = torch.arange(bins.numel(), device=lo.device) - torch.searchsorted(bins, bins)
    return order, bins, rank, int(torch.unique_consecutive(bins).numel())


def region_attention(query, keys, values, lo, hi) -> torch.Tensor:
    """[R, E] sum over each region of a(t) * values[t]: the W_a F a^T term of Eq. 8, with ``values`` =
    W_a F computed once per snippet ([S, E]) and a(t) as :func:`attention_weights` (query [R, D],
    keys [S, D]). See :func:`region_attention_mean` for how."""
    return region_attention_mean(query, keys, values, None, lo, hi)[0]


def region_attention_mean(query, keys, values, mean_values, lo, hi):
    """(:func:`region_attention` [R, E], the mean of ``mean_values`` [S, E2] over each region [R, E2] or
    None where ``mean_values`` is None): Eq. 8's attended term and Eq. 10's local term, from the same tiles.

    Computed in tiles rather than pair by pair: gathering a key row for every (region, snippet) pair
    moves M x D floats (M = sum of region lengths; ~100k pairs x 1024 a THUMOS video), which costs far
    more than the arithmetic. Regions are grouped by length (L <= K < 2L, L a power of 2) and, within
    a group, by start into bins of ``step`` snippets (L, or in inference a larger power of 2 where
    bins of L would be mostly empty): bin j holds the regions starting in [j step, (j+1) step), which
    all lie inside the window of snippets [j step, j step + step + 2L). A tile is up to G regions of
    one bin (G = the mean number of regions of a non-empty bin, or with strided windows the most
    regions of a bin up to twice the mean; a crowded bin, e.g. of the extended regions clipped to a
    video's first snippet, fills several tiles); two batched matrix products over
    the tiles give the cosines [tiles, G, W] and the weighted sums [tiles, G, E], with a mask for the
    snippets outside each region; the means are one more product with the weights 1/K on the mask.
    Keys are not normalised: the cosine is the unit query's product with the key divided by the key's
    norm (a [S] vector), which saves writing unit keys.

    Without a gradient (inference), the first tile of every bin reads its window as a strided view of
    the keys and values (overlapping windows, no copy) when that reads fewer rows than gathering the
    windows would move; the remaining tiles, and every tile with autograd (a strided view's backward
    and bmm over empty bins cost 2x a training step), gather their windows in one indexing op.
    Windows past the last snippet are gathered with clamped indices (masked out), so nothing is padded.
    """
    r, s, d, e = lo.shape[0], keys.shape[0], keys.shape[1], values.shape[1]
    out = values.new_zeros(r, e)
    mean = None if mean_values is None else mean_values.new_zeros(r, mean_values.shape[1])
    if r == 0:
        return out, mean
    q = _unit(query).to(values.dtype)  # [R, D]: unit queries
    norms = keys.norm(dim=-1).clamp_min(COS_EPS)  # [S]
    level = _levels(lo, hi)
    plans = []  # tiles whose windows are gathered: (rows, tile, slot, window starts, G, W)
    no_grad = not torch.is_grad_enabled() or not any(
        t is not None and t.requires_grad for t in (query, keys, values, mean_values))
    for b in torch.unique(level).tolist():
        length = 1 << b
        rows = torch.nonzero(level == b).squeeze(1)  # [R_b]
        order, bins, rank, n_full = _bins(lo[rows], length)
        g = -(-rows.numel() // n_full)  # mean regions of a non-empty bin
        gathered_rows = int((rank % g == 0).sum()) * 3 * length  # tiles x window
        if no_grad and 3 * gathered_rows >= s:  # strided windows read fewer rows than gathering moves
            step = length
            while 2 * -(-s // step) > rows.numel() and step < s:  # coarser bins until most hold a region
                step *= 2
            order, bins, rank, n_full = _bins(lo[rows], step)
            g = min(int(rank.max()) + 1, 2 * -(-rows.numel() // n_full))  # the fullest bin, or 2x the mean
            rows, width = rows[order], step + 2 * length
            n_fit = max(0, (s - width) // step + 1)  # bins whose window ends inside the video(s)
            main = (rank < g) & (bins < n_fit)
            if bool(main.any()):
                starts = torch.arange(n_fit, device=lo.device) * step
                vw = _windows(values, n_fit, width, step)
                mw = None if mean_values is None else (
                    vw if mean_values is values else _windows(mean_values, n_fit, width, step))
                a, m = _attend(q, lo, hi, rows[main], bins[main], rank[main], starts,
                               _windows(keys, n_fit, width, step), _windows(norms, n_fit, width, step), vw, mw, g)
                out.index_copy_(0, rows[main], a)
                if m is not None:
                    mean.index_copy_(0, rows[main], m)
            rows = rows[~main]  # the rest: gathered, binned again by L (compact windows of 3L)
            if rows.numel() == 0:
                continue
            order, bins, rank, n_full = _bins(lo[rows], length)
            g = -(-rows.numel() // n_full)
        step, rows, width = length, rows[order], 3 * length
        per_bin = int(rank.max()) // g + 1
        chunks, tile = torch.unique(bins * per_bin + rank // g, return_inverse=True)  # tile of each region
        plans.append((rows, tile, rank % g, chunks // per_bin * step, g, width))
    if plans:  # one gather for all length groups' windows (so one index_add in the backward)
        index = torch.cat([(st.unsqueeze(1) + torch.arange(w, device=lo.device)).flatten()
                           for _, _, _, st, _, w in plans]).clamp_max(s - 1)  # past the end: masked out
        sizes = [st.numel() * w for _, _, _, st, _, w in plans]
        kg, ng = keys[index].split(sizes), norms[index].split(sizes)
        vg = kg if values is keys else values[index].split(sizes)
        mg = [None] * len(plans) if mean_values is None else (
            vg if mean_values is values else mean_values[index].split(sizes))
        for (rows, tile, slot, starts, g, width), kw, nw, vw, mw in zip(plans, kg, ng, vg, mg):
            a, m = _attend(q, lo, hi, rows, tile, slot, starts, kw.view(-1, width, d), nw.view(-1, width),
                           vw.view(-1, width, e), None if mw is None else mw.view(-1, width, mw.shape[-1]), g)
            out.index_copy_(0, rows, a)
            if m is not None:
                mean.index_copy_(0, rows, m)
    return out, mean
