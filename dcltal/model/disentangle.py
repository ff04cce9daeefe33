"""The disentanglement network (paper §3.2, Eq. 1-5) and the MLPs that take its place in the
ablations (Table 1, Table 4). Every module here maps snippets to snippets ([S, D] -> [S, D]), so it
runs once per snippet of the packed videos (DESIGN §3), never per proposal.

Each module returns ``(F_cls [S, D], F_loc [S, D], error [S] or None)``: the features the
classification and the localization branch aggregate, and the per-snippet reconstruction error of
Eq. 3 (``||Y(t) - Y_hat(t)||^2 / D + 1 - cos(Y(t), Y_hat(t))``; a proposal's L_rec is its mean over the
proposal's snippets, taken by prefix sums in the detector).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dcltal.ops.pooling import cosine_rows

MODES = ("dnet", "random", "only_common", "no_common")
ROWS_PER_CHUNK = 256  # snippets a chunk without autograd: [256, D] intermediates fit in L2 / L3


def reconstruction_error(y: torch.Tensor, y_hat: torch.Tensor) -> torch.Tensor:
    """[S] Eq. 3 per snippet: squared error averaged over the D channels plus the cosine distance."""
    mse = (y - y_hat).pow(2).mean(-1)
    return mse + (1.0 - cosine_rows(y, y_hat))


class Disentangler(nn.Module):
    """Autoencoder of Eq. 1-2 and the two feature extractors of Eq. 4-5.

    H_cls, H_com, H_loc = W_e^cls Y, W_e^com Y, W_e^loc Y (Eq. 1, [S, D_h] each);
    Y_hat = ReLU(W_d [H_cls, H_com, H_loc]) (Eq. 2); F_cls = ReLU(W_d [H_cls, H_com, 0]) (Eq. 4);
    F_loc = ReLU(W_d [0, H_com, H_loc]) (Eq. 5). W_d is applied as three column blocks, so the three
    decodes cost one decode (a zero block contributes nothing; see :meth:`_decode`).

    ``mode`` selects the Table 4 ablations:
      - ``dnet``: the paper (zeros in Eq. 4-5);
      - ``random``: Gaussian noise in place of the zeros, drawn afresh for every snippet and every
        forward (training and inference), with the standard deviation of the hidden part it replaces
        (detached), so it removes that part's information and adds noise of the same scale;
      - ``only_common``: both branches decode the common part alone, F_cls = F_loc = ReLU(W_d [0, H_com, 0]);
      - ``no_common``: no common part at all: no W_e^com, W_d over [H_cls, H_loc] (2 D_h columns);
        Y_hat = ReLU(W_d [H_cls, H_loc]), F_cls = ReLU(W_d [H_cls, 0]), F_loc = ReLU(W_d [0, H_loc]).
    The reconstruction (Eq. 2-3) always uses every hidden part the mode has.
    """

    def __init__(self, dim: int, hidden: int = 256, mode: str = "dnet"):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"unknown disentangler mode {mode!r} (choose one of {MODES})")
        self.mode, self.hidden = mode, hidden
        self.enc_cls = nn.Linear(dim, hidden)  # W_e^cls
        self.enc_com = nn.Linear(dim, hidden) if mode != "no_common" else None  # W_e^com
        self.enc_loc = nn.Linear(dim, hidden)  # W_e^loc
        self.decoder = nn.Linear((2 if mode == "no_common" else 3) * hidden, dim)  # W_d over [cls, com, loc]

    def encoders(self) -> list[nn.Linear]:
        """The encoders in the decoder's column order: cls, com, loc (cls, loc without a common part)."""
        return [m for m in (self.enc_cls, self.enc_com, self.enc_loc) if m is not None]

    def forward(self, y: torch.Tensor, reconstruct: bool = True):
        """y [S, D] -> (F_cls [S, D], F_loc [S, D], error [S], or None without ``reconstruct``: inference
        needs no Eq. 2-3). Without autograd (inference) the snippets run in chunks of ROWS_PER_CHUNK, so
        that the decodes' [rows, D] intermediates stay in cache; ``random`` takes its noise scale over the
        whole batch, so it always runs whole."""
        encs = self.encoders()
        weight = torch.cat([e.weight for e in encs])  # [P * D_h, D], one matmul for Eq. 1
        bias = torch.cat([e.bias for e in encs])
        if torch.is_grad_enabled() or self.mode == "random" or y.shape[0] <= ROWS_PER_CHUNK:
            return self._decode(y, weight, bias, reconstruct)
        for a in range(0, y.shape[0], ROWS_PER_CHUNK):
            rows = slice(a, a + ROWS_PER_CHUNK)
            c, lo_, e = self._decode(y[rows], weight, bias, reconstruct)
            if a == 0:  # the outputs in the decodes' dtype (bfloat16 under autocast)
                f_cls, f_loc = c.new_empty(y.shape), c.new_empty(y.shape)
                error = e.new_empty(y.shape[0]) if reconstruct else None
            f_cls[rows] = c
            if reconstruct:
                error[rows] = e
            if lo_ is not c:
                f_loc[rows] = lo_
        if self.mode == "only_common":
            f_loc = f_cls
        return f_cls, f_loc, error

    def _decode(self, y: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, reconstruct: bool):
        """Eq. 1-5 on the rows ``y`` [S, D], with the encoders stacked (``weight`` [P * D_h, D], ``bias``);
        Eq. 2-3 only where ``reconstruct`` (else the error is None).
        The decoder is linear before its ReLU, so each decode is the bias plus the products of the parts
        it keeps with their column blocks of W_d, accumulated by ``addmm`` (a zero part contributes
        nothing): one product per part for all three decodes."""
        h = F.linear(y, weight, bias).split(self.hidden, dim=-1)  # P x [S, D_h]
        blocks = [w.t() for w in self.decoder.weight.split(self.hidden, dim=1)]  # P x [D_h, D]
        b = self.decoder.bias
        if self.mode == "no_common":
            (h_cls, h_loc), (w_cls, w_loc) = h, blocks
            cls_pre = torch.addmm(b, h_cls, w_cls)  # W_d [H_cls, 0] + b
            loc_part = h_loc @ w_loc
            error = reconstruction_error(y, F.relu(cls_pre + loc_part)) if reconstruct else None
            return F.relu(cls_pre), F.relu(loc_part + b), error
        (h_cls, h_com, h_loc), (w_cls, w_com, w_loc) = h, blocks
        com = torch.addmm(b, h_com, w_com)  # [S, D] W_d [0, H_com, 0] + b
        if self.mode == "only_common":
            common = F.relu(com)
            if not reconstruct:
                return common, common, None
            y_pre = torch.addmm(torch.addmm(com, h_cls, w_cls), h_loc, w_loc)
            return common, common, reconstruction_error(y, F.relu(y_pre))
        cls_pre = torch.addmm(com, h_cls, w_cls)  # W_d [H_cls, H_com, 0] + b
        if self.mode == "random":
            noise_loc = torch.randn_like(h_loc) * h_loc.detach().std()
            noise_cls = torch.randn_like(h_cls) * h_cls.detach().std()
            f_cls = F.relu(torch.addmm(cls_pre, noise_loc, w_loc))
            f_loc = F.relu(torch.addmm(torch.addmm(com, h_loc, w_loc), noise_cls, w_cls))
            error = reconstruction_error(y, F.relu(torch.addmm(cls_pre, h_loc, w_loc))) if reconstruct else None
            return f_cls, f_loc, error
        if not reconstruct:  # Eq. 4, Eq. 5; the pre-activations are not needed again
            return cls_pre.relu_(), torch.addmm(com, h_loc, w_loc).relu_(), None
        loc_part = h_loc @ w_loc  # [S, D]
        y_hat = F.relu(cls_pre + loc_part)  # Eq. 2
        return F.relu(cls_pre), F.relu(com + loc_part), reconstruction_error(y, y_hat)  # Eq. 4, Eq. 5


class SnippetMLP(nn.Module):
    """Linear -> ReLU -> Linear -> ReLU, [S, D] -> [S, D]: the MLPs of Table 1 in the D-Net's place
    (the final ReLU mirrors the D-Net's decoder, so both feed the aggregators non-negative features)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, dim), nn.ReLU())

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.net(y)


class SharedMLP(nn.Module):
    """``mlp1`` (Table 1, MLP_1): one MLP for both branches, F_cls = F_loc = MLP(Y); no reconstruction.
    Hidden size 3 D_h, which gives exactly the D-Net's parameter count (6 D D_h + 3 D_h + D)."""

    def __init__(self, dim: int, hidden: int = 256):
        super().__init__()
        self.mlp = SnippetMLP(dim, 3 * hidden)

    def forward(self, y: torch.Tensor, reconstruct: bool = True):
        f = self.mlp(y)
        return f, f, None


class TwoMLPs(nn.Module):
    """``mlp2`` (Table 1, MLP_2): one MLP a branch, F_cls = MLP_cls(Y), F_loc = MLP_loc(Y); no
    reconstruction. Hidden size 3 D_h / 2 each: 6 D D_h + 3 D_h + 2 D parameters, the D-Net's plus D."""

    def __init__(self, dim: int, hidden: int = 256):
        super().__init__()
        self.mlp_cls = SnippetMLP(dim, 3 * hidden // 2)
        self.mlp_loc = SnippetMLP(dim, 3 * hidden // 2)

    def forward(self, y: torch.Tensor, reconstruct: bool = True):
        return self.mlp_cls(y), self.mlp_loc(y), None


class Original(nn.Module):
    """``baseline`` (Table 1, first row: the A-Net alone): both branches aggregate the original features."""

    def forward(self, y: torch.Tensor, reconstruct: bool = True):
        return y, y, None


def build_disentangler(variant: str, dim: int, hidden: int) -> nn.Module:
    """The module in the D-Net's place for a ``model.variant``."""
    if variant == "baseline":
        return Original()
    if variant == "mlp1":
        return SharedMLP(dim, hidden)
    if variant == "mlp2":
        return TwoMLPs(dim, hidden)
    return Disentangler(dim, hidden, mode=variant)
