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
    """Three panels: the total loss per stream, the loss terms (colour: term, line style: stream),
    and the validation mAP per stream (columns whose name holds ``map``; the average over tIoU
    where the file also has per-threshold columns ``...@t``)."""
    x_col, series = read_metrics(metrics_csv)
    maps = [n for n in series if "map" in n.lower()]
    maps = [n for n in maps if "@" not in n] or maps
    losses = [n for n in series if "map" not in n.lower()]
    totals = [n for n in losses if n == "total"] or losses
    terms = [n for n in losses if n not in totals]
    streams = sorted({s for n in series for s in series[n]})
    styles = dict(zip(streams, ("-", "--", ":", "-.") * 4))
    fig, axes = new_figure(1, 3, size=(14, 4))
    for ax, names, ylabel in ((axes[0], totals, "total loss (Eq. 15)"), (axes[1], terms, "loss terms"),
                              (axes[2], maps, "validation mAP")):
        for name in sorted(names):
            for stream, points in sorted(series[name].items()):
                xs, ys = zip(*points)
                label = f"{stream}: {name}" if len(names) > 1 or ax is axes[1] else stream
                ax.plot(xs, ys, marker="o" if len(xs) < 30 else None, markersize=3, label=label,
                        linestyle=styles[stream] if ax is axes[1] else "-",
                        color=f"C{sorted(names).index(name) if ax is axes[1] else streams.index(stream)}")
        ax.set_xlabel(x_col)
        ax.set_ylabel(ylabel)
        if ax.lines:
            ax.legend(fontsize=7, ncol=2 if len(ax.lines) > 6 else 1)
        else:
            ax.text(0.5, 0.5, "no such column in metrics.csv", ha="center", va="center", transform=ax.transAxes)
    if title:
        fig.suptitle(title)
    save_figure(fig, out_png)
