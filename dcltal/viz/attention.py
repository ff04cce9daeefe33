"""The paper's Fig. 1 and Fig. 3: which snippets a proposal-level feature attends to.

For a ground-truth proposal, the proposal-level feature of each kind (original snippet features,
disentangled classification F_cls, disentangled localization F_loc) is the max over the proposal's
snippets (Eq. 6, f^O); its cosine similarity with each snippet's feature of the same kind is the
attention a(t) of Eq. 7. The paper reads the curves: the original and classification features peak
on the most discriminative frames, the localization features spread over the whole action and its
start and end.
"""
from __future__ import annotations

import os

import numpy as np
import torch

from dcltal.viz.figure import new_figure, save_figure

STYLES = {"original": ("tab:orange", "original features"), "cls": ("tab:blue", "classification features F_cls"),
          "loc": ("tab:red", "localization features F_loc")}


def attention_curves(features: dict[str, torch.Tensor | np.ndarray], lo: int, hi: int, view: tuple[int, int]) -> dict[str, np.ndarray]:
    """{kind: [T, D] snippet features} and a proposal's snippets ``[lo, hi)`` -> {kind: cosine
    similarity of the proposal's max-pooled feature (Eq. 6) with each snippet in ``view`` [a, b)} (Eq. 7)."""
    curves = {}
    for kind, f in features.items():
        f = torch.as_tensor(np.asarray(f, dtype=np.float32))
        pooled = f[lo:hi].max(dim=0).values  # [D] f^O
        curves[kind] = torch.nn.functional.cosine_similarity(f[view[0] : view[1]], pooled[None, :], dim=1).numpy()
    return curves


def plot_attention(
    times: np.ndarray, curves: dict[str, np.ndarray], span: tuple[float, float], out_png: str | os.PathLike, title: str = ""
) -> None:
    """Curves over snippet centres (seconds), the ground-truth span shaded (as Fig. 1 and 3)."""
    fig, ax = new_figure(size=(8, 3.6))
    ax.axvspan(span[0], span[1], color="0.85", label="ground truth")
    for kind, values in curves.items():
        colour, label = STYLES.get(kind, (None, kind))
        ax.plot(times, values, color=colour, label=label, linewidth=1.6)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("cosine similarity to the proposal feature")
    ax.legend(fontsize=8)
    ax.set_title(title)
    save_figure(fig, out_png)
