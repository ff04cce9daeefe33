"""matplotlib with the Agg backend (no display needed), and atomic PNG writes."""
from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)

from dcltal.io import atomic_path  # noqa: E402


def new_figure(rows: int = 1, cols: int = 1, size: tuple[float, float] = (8, 4)):
    fig, axes = plt.subplots(rows, cols, figsize=size, squeeze=True)
    return fig, axes


def save_figure(fig, path: str | os.PathLike) -> None:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
