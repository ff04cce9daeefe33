"""Training curves from a trainer's metrics.csv: losses in one panel, validation mAP in another."""
from __future__ import annotations

import csv
import math
import os
from collections import defaultdict

from dcltal.io import existing_path
from dcltal.viz.figure import new_figure, save_figure

X_COLUMNS = ("epoch", "step", "iteration")  # the first one present is the x axis
TEXT_COLUMNS = ("stream", "split", "phase", "time", "wall_s", "lr")  # neither a loss nor an mAP


def read_metrics(path: str | os.PathLike) -> tuple[str, dict[str, dict[str, list[tuple[float, float]]]]]:
    """metrics.csv -> (x column, {series name: {stream: [(x, y), ...]}}). A ``stream`` column, where
    present, splits each series by stream; empty and non-numeric cells are skipped."""
    with open(existing_path(path, "metrics file"), newline="") as f:
        rows = list(csv.DictReader(f))
    columns = list(rows[0]) if rows else []
    x_col = next((c for c in X_COLUMNS if c in columns), None)
    series: dict[str, dict[str, list[tuple[float, float]]]] = defaultdict(lambda: defaultdict(list))
    for i, row in enumerate(rows):
        x = _number(row.get(x_col)) if x_col else float(i)
        stream = row.get("stream") or "all"
        for col in columns:
            if col == x_col or col in TEXT_COLUMNS:
                continue
            y = _number(row.get(col))
            if x is not None and y is not None:
                series[col][stream].append((x, y))
    return x_col or "row", series


def _number(text: str | None) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def plot_training_curves(metrics_csv: str | os.PathLike, out_png: str | os.PathLike, title: str = "") -> None:
    """Losses (left) and validation mAP (right, columns whose name holds ``map``) over the x axis."""
    x_col, series = read_metrics(metrics_csv)
    fig, (ax_loss, ax_map) = new_figure(1, 2, size=(11, 4))
    for name, by_stream in sorted(series.items()):
        ax = ax_map if "map" in name.lower() else ax_loss
        for stream, points in sorted(by_stream.items()):
            xs, ys = zip(*points)
            label = name if stream == "all" else f"{stream}: {name}"
            ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, markersize=3, label=label)
    for ax, ylabel in ((ax_loss, "loss"), (ax_map, "validation mAP")):
        ax.set_xlabel(x_col)
        ax.set_ylabel(ylabel)
        if ax.lines:
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "no such column in metrics.csv", ha="center", va="center", transform=ax.transAxes)
    if title:
        fig.suptitle(title)
    save_figure(fig, out_png)
