"""The ablation study's numbers (DIR/ablations.json) and page (DIR/ablations.md).

Every number is kept per seed; each cell is the mean ± sample std (ddof = 1) over seeds, computed
for every tIoU of ``eval.tiou`` and the average, per stream and fused. The page shows the paper's
layouts at tIoU 0.5 (Tables 1-4), in percent.
"""
from __future__ import annotations

import os
import platform

import numpy as np
import yaml

DDOF = 1  # sample standard deviation over seeds; undefined (null, shown as "n/a") with one seed
STREAM_NAMES = {"rgb": "RGB", "flow": "Flow", "fusion": "Fusion"}


def mean_std(values) -> tuple[float, float | None]:
    """Mean and sample std (ddof = DDOF) over seeds; std None where there is one seed."""
    arr = np.asarray(values, dtype=np.float64)
    return float(arr.mean()), (float(arr.std(ddof=DDOF)) if len(arr) > DDOF else None)


def _aggregate(per_seed: dict[str, dict[str, dict]]) -> tuple[dict, dict]:
    """per_seed {seed: {group: {"mAP": [per tIoU], "average_mAP": x}}} -> (mean, std) of the same shape."""
    seeds = list(per_seed)
    mean, std = {}, {}
    for group in per_seed[seeds[0]]:
        maps = np.array([per_seed[s][group]["mAP"] for s in seeds])  # [seeds, tIoU]
        cols = [mean_std(maps[:, i]) for i in range(maps.shape[1])]
        avg = mean_std([per_seed[s][group]["average_mAP"] for s in seeds])
        mean[group] = {"mAP": [m for m, _ in cols], "average_mAP": avg[0]}
        std[group] = {"mAP": [d for _, d in cols], "average_mAP": avg[1]}
    return mean, std


def summarise(tables, runs: dict, evaluations: dict, cfg, variants: list[str], seeds: int, i05: int,
              param_stream: str) -> dict:
    """The JSON object of the study: config, runs, and every table row with its per-seed numbers,
    mean and std."""
    out_tables = []
    for t in tables:
        rows = []
        for labels, recipe in t.rows:
            per_seed = evaluations[recipe.key]
            mean, std = _aggregate(per_seed)
            row = {"labels": list(labels), "recipe": {"cls_from": recipe.cls_variant, "loc_from": recipe.loc_variant,
                                                       "cls_feature": recipe.cls_feature,
                                                       "loc_feature": recipe.loc_feature},
                   "per_seed": per_seed, "mean": mean, "std": std}
            if t.params:
                counts = [runs[recipe.cls_variant][s]["params"] for s in per_seed]
                row["params"] = counts[0]  # the architecture's count: the same for every seed
            rows.append(row)
        groups = list(rows[0]["mean"])
        out_tables.append({"id": t.id, "title": t.title, "head": list(t.head), "groups": groups,
                           "params_stream": param_stream if t.params else None, "rows": rows})
    return {"format": "dcltal-ablations/1", "seeds": [cfg.train.seed + s for s in range(seeds)],
            "num_seeds": seeds, "ddof": DDOF, "variants": variants, "tiou": list(cfg.eval.tiou),
            "table_tiou": cfg.eval.tiou[i05], "table_tiou_index": i05, "protocol": cfg.eval.protocol,
            "config": cfg.to_dict(), "runs": runs, "tables": out_tables}


def machine(device: str) -> str:
    import torch

    dev = "cuda" if device != "cpu" and torch.cuda.is_available() else "cpu"
    return (f"{platform.node()}: {platform.machine()}, {os.cpu_count()} CPUs, {platform.python_implementation()} "
            f"{platform.python_version()}, torch {torch.__version__} ({torch.get_num_threads()} threads), device {dev}")


def _cell(mean: float, std: float | None) -> str:
    return f"{100 * mean:.2f}" + (f" ± {100 * std:.2f}" if std is not None else "")


def _params(n: int) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e5 else f"{n / 1e3:.1f}K"


def render_table(table: dict, i05: int) -> list[str]:
    groups = table["groups"]
    head = list(table["head"]) + [STREAM_NAMES.get(g, g) for g in groups]
    if table["params_stream"]:
        head.append(f"#Params ({STREAM_NAMES.get(table['params_stream'], table['params_stream'])})")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in table["rows"]:
        cells = list(row["labels"]) + [_cell(row["mean"][g]["mAP"][i05], row["std"][g]["mAP"][i05]) for g in groups]
        if table["params_stream"]:
            cells.append(_params(row["params"]))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _weights(weights) -> str:
    """``rgb 5:flow 6``, or ``held_out`` (each run's own, chosen on its held-out videos)."""
    return ":".join(f"{k} {w:g}" for k, w in weights.items()) if isinstance(weights, dict) else str(weights)


def render(study: dict) -> str:
    n, t = study["num_seeds"], study["table_tiou"]
    data, infer = study["config"]["data"], study["config"]["infer"]
    spread = (f"mean ± sample std (ddof = {study['ddof']}) over {n} seeds" if n > 1
              else "one seed: no std (run with --seeds N for mean ± std)")
    lines = ["# Ablation study (the paper's Tables 1-4)", "",
             f"- **command**: `{study['command']}`",
             f"- **seeds**: {n} (train.seed {', '.join(map(str, study['seeds']))}); cells are {spread}",
             f"- **metric**: detection mAP (%) at tIoU {t:g} on subset {study['config']['data']['test_subset']} "
             f"({study['protocol']} protocol); every tIoU of {study['tiou']} and the average are in ablations.json",
             f"- **data**: {data['annotations']}, features {data['features']}, streams {data['streams']}, "
             f"proposals {data['proposals']}",
             f"- **inference**: fusion {_weights(infer['stream_weights'])}, "
             f"video-level scores {infer['video_scores']} (top {infer['video_top_k']} classes), "
             f"{infer['nms']} NMS at {infer['nms_iou']:g}, order {infer['order']}",
             f"- **variants trained**: {', '.join(study['variants'])}",
             f"- **wall time**: {study['wall_s']:.0f} s",
             f"- **machine**: {study['machine']}", ""]
    for table in study["tables"]:
        lines += [f"## {table['title']} (mAP@{t:g}, {n} seed{'s' if n > 1 else ''})", ""]
        lines += render_table(table, study["table_tiou_index"]) + [""]
    lines += ["## Config", "", "```yaml", yaml.safe_dump(study["config"], sort_keys=False).rstrip(), "```"]
    return "\n".join(lines) + "\n"
