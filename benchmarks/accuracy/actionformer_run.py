#!/usr/bin/env python3
"""ActionFormer (actionformer==1.5.0), the accuracy zoo's peer: its THUMOS14 recipe on one data dir.

    .peer-venv/actionformer/bin/python benchmarks/accuracy/actionformer_run.py \\
        --data DIR --out OUTDIR [--epochs 10] [--setting NAME] [--stride S]
    .peer-venv/actionformer/bin/python benchmarks/accuracy/actionformer_run.py --zoo ZOO_DIR

DIR is a data dir in dcltal's layout: annotations.json (subsets Validation = train, Test),
features/<vid>.npy float32 [T, C] (both streams side by side, so input_dim = C), classes.txt and,
where the zoo wrote it, setting.json or zoo.json (stride, name, ActivityNet or THUMOS14 layout).
It trains with the official configs/thumos_i3d.yaml values (THUMOS_I3D below) plus the changes a
short CPU budget needs (SHORT_CPU_BUDGET), scores the EMA model on Test with dcltal's evaluator
and writes OUTDIR/results.json (ActivityNet results format), eval.json and summary.json
(run_zoo.py's schema, one row "all", figures in %, read by report.py).

--zoo ZOO_DIR runs every ZOO_DIR/data/<setting> into ZOO_DIR/actionformer/<setting>, skipping
those that already have a summary.json. Run with any Python, the script restarts itself under
.peer-venv/actionformer, installing the peer there first (actionformer_install.sh) where that venv
is missing: one command from a fresh clone. Facts behind each
choice: ../shared/peers/actionformer.md. ActionFormer is never a dependency of dcltal.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PEER_PYTHON = ROOT / ".peer-venv" / "actionformer" / "bin" / "python"

# The same OpenMP setting dcltal's command applies (dcltal/runtime.py), so that the two systems
# are timed alike: libgomp's default busy-wait keeps a core spinning after every op, which on a
# shared 2-core machine made a training step several times slower. libgomp reads it on load.
os.environ.setdefault("GOMP_SPINCOUNT", "3000")

try:
    import numpy as np
    import torch
    import yaml
    from actionformer.core import load_config, validate_config
    from actionformer.core.config import DEFAULTS
    from actionformer.datasets import make_dataset
    from actionformer.datasets.data_utils import trivial_batch_collator
    from actionformer.modeling import make_meta_arch
    from actionformer.utils import HAS_CPP_NMS, ModelEma, fix_random_seed, make_optimizer, make_scheduler
except ImportError:
    # The peer lives in a venv of its own; restart there once rather than fail on a plain python.
    # (the venv's python is a symlink to the base interpreter: an environment mark, not paths,
    # tells whether this already is the restart)
    if not os.environ.get("ACTIONFORMER_RUN_REEXEC"):
        if not PEER_PYTHON.exists():  # one command from a fresh clone: install the peer first (minutes, once)
            import subprocess

            subprocess.run(["bash", str(Path(__file__).with_name("actionformer_install.sh"))], check=True)
        os.environ["ACTIONFORMER_RUN_REEXEC"] = "1"
        os.execv(str(PEER_PYTHON), [str(PEER_PYTHON), *sys.argv])
    sys.exit("actionformer is not importable: run benchmarks/accuracy/actionformer_install.sh")

# configs/thumos_i3d.yaml of the official release, as released (ActionFormer ships no config files
# in its wheel). Paths, input_dim, num_classes and the grid are filled in per data dir.
THUMOS_I3D = {
    "dataset_name": "thumos",
    "train_split": ["validation"],
    "val_split": ["test"],
    "dataset": {"file_prefix": None, "file_ext": ".npy", "num_classes": 20, "input_dim": 2048,
                "feat_stride": 4, "num_frames": 16, "trunc_thresh": 0.5, "crop_ratio": [0.9, 1.0],
                "max_seq_len": 2304},
    "model": {"fpn_type": "identity", "max_buffer_len_factor": 6.0, "n_mha_win_size": 19},
    "opt": {"learning_rate": 0.0001, "epochs": 45, "weight_decay": 0.05},
    "loader": {"batch_size": 2},
    "train_cfg": {"init_loss_norm": 100, "clip_grad_l2norm": 1.0, "cls_prior_prob": 0.01,
                  "center_sample": "radius", "center_sample_radius": 1.5},
    "test_cfg": {"voting_thresh": 0.7, "pre_nms_topk": 2000, "max_seg_num": 200, "min_score": 0.001,
                 "multiclass_nms": False, "ext_score_file": "./data/thumos/annotations/thumos14_cls_scores.pkl"},
    "output_folder": "./ckpt/",
}
# The adjustments for about 10 CPU epochs (the facts file): at the official EMA 0.999 and ~800
# steps the EMA copy still holds ~45% of its initial weights; without external video-level class
# scores the config's documented alternative is multiclass NMS. max_seq_len is set per data dir.
SHORT_CPU_BUDGET = {"ema_decay": 0.99, "test_cfg": {"multiclass_nms": True, "ext_score_file": None}}
# The official schedule: 5 warm-up epochs (the package default) before 45 cosine ones.
WARMUP_SHARE = 5 / 50
SEED = 1234567891  # the official init_rand_seed
ALL_CLASSES_KEY = "__actionformer_all_classes__"


def data_setting(data: Path) -> dict:
    """What the data dir says about itself: setting.json, else the zoo's zoo.json "setting"."""
    if (data / "setting.json").exists():
        return json.loads((data / "setting.json").read_text())
    if (data / "zoo.json").exists():
        return json.loads((data / "zoo.json").read_text()).get("setting", {})
    return {}


def class_names(data: Path, database: dict) -> list[str]:
    """Class index order as dcltal reads it: classes.txt, else label_id, else sorted names."""
    if (data / "classes.txt").exists():
        return [ln.strip() for ln in (data / "classes.txt").read_text().splitlines() if ln.strip()]
    ids = {a["label"]: a.get("label_id") for v in database.values() for a in v.get("annotations", [])}
    if ids and all(i is not None for i in ids.values()):
        return sorted(ids, key=ids.get)
    return sorted(ids)


def peer_annotations(database: dict, classes: list[str], fps: float, out: Path) -> Path:
    """The annotation file ActionFormer's THUMOS14 loader reads: label_id from ``classes``, fps
    where missing, and one entry of no split that names every class, because the loader counts
    the classes it meets in the file and asserts the count (a zoo setting may use 40 of 200)."""
    index = {c: i for i, c in enumerate(classes)}
    db = {}
    for vid, v in database.items():
        v = dict(v, fps=v.get("fps", fps))
        v["annotations"] = [dict(a, label_id=index[a["label"]]) for a in v.get("annotations", [])]
        db[vid] = v
    db[ALL_CLASSES_KEY] = {"subset": "none", "duration": 1.0, "fps": fps,
                           "annotations": [{"label": c, "label_id": i, "segment": [0.0, 1.0]} for i, c in enumerate(classes)]}
    path = out / "actionformer_annotations.json"
    path.write_text(json.dumps({"version": "actionformer_run", "database": db}))
    return path


def max_div_factor(model_cfg: dict) -> int:
    """The factor every padded length must be a multiple of: the deepest level's stride times its
    attention window (the model asserts the same)."""
    arch, scale, win = model_cfg["backbone_arch"], model_cfg["scale_factor"], model_cfg["n_mha_win_size"]
    wins = [win] * (arch[-1] + 1) if isinstance(win, int) else win
    return max((scale ** lv) * ((w // 2) * 2 if w > 1 else 1) for lv, w in enumerate(wins))


def build_config(args, data: Path, out: Path, database: dict, classes: list[str]) -> dict:
    """The recipe for this data dir, written to OUTDIR/config.yaml and read back through the
    package's load_config (its defaults merged in) and validate_config."""
    cfg = copy.deepcopy(THUMOS_I3D)
    ds = cfg["dataset"]
    train_ids = [v for v, e in database.items() if e["subset"] == args.train_subset]
    lengths = [np.load(data / "features" / f"{v}.npy", mmap_mode="r").shape for v in train_ids
               if (data / "features" / f"{v}.npy").exists()]
    if not lengths:
        raise SystemExit(f"{data}: no training video ({args.train_subset}) has a feature file")
    ds.update(json_file=str(peer_annotations(database, classes, args.fps, out)),
              feat_folder=str(data / "features"), input_dim=int(lengths[0][1]), num_classes=len(classes),
              feat_stride=args.stride, num_frames=args.window, default_fps=None)
    cfg["train_split"], cfg["val_split"] = [args.train_subset.lower()], [args.test_subset.lower()]
    cfg["devices"], cfg["loader"]["num_workers"] = ["cpu"], 0
    cfg["init_rand_seed"] = args.seed
    warmup = round(args.epochs * WARMUP_SHARE)
    cfg["opt"].update(epochs=args.epochs - warmup, warmup_epochs=warmup)
    cfg["test_cfg"].update(SHORT_CPU_BUDGET["test_cfg"])
    # the longest training video in one crop, rounded up to what the pyramid and windows divide
    model_defaults = {**DEFAULTS["model"], **cfg["model"]}
    factor = max_div_factor(model_defaults)
    longest = max(n for n, _ in lengths)
    ds["max_seq_len"] = args.max_seq_len or factor * math.ceil(longest / factor)
    path = out / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    cfg = load_config(str(path), defaults=copy.deepcopy(DEFAULTS))
    validate_config(cfg)
    return cfg


def evaluate(args, data: Path, out: Path, protocol: str) -> dict:
    """Score results.json with dcltal's evaluator (the same code that scores dcltal)."""
    cmd = [args.dcltal, "eval", "--gt", str(data / "annotations.json"), "--pred", str(out / "results.json"),
           "--subset", args.test_subset, "--protocol", protocol, "--json", str(out / "eval.json")]
    if protocol == "thumos14":
        cmd += ["--tiou", "0.3", "0.4", "0.5", "0.6", "0.7"]
    if (data / "classes.txt").exists():
        cmd += ["--classes", str(data / "classes.txt")]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return json.loads((out / "eval.json").read_text())


def run_one(args) -> dict:
    """Train, infer and score one data dir; return the summary it writes."""
    data, out = Path(args.data).resolve(), Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    setting = data_setting(data)
    args.stride = args.stride or setting.get("stride") or setting.get("feature_stride")
    if not args.stride:
        raise SystemExit(f"{data}: no setting.json / zoo.json says the feature stride; pass --stride")
    args.window = args.window or setting.get("window") or setting.get("feature_window") or 16
    name = args.setting or setting.get("name") or data.name
    database = json.loads((data / "annotations.json").read_text())["database"]
    classes = class_names(data, database)
    protocol = setting.get("protocol") or ("activitynet" if setting.get("source") == "activitynet"
                                           or len(classes) == 200 else "thumos14")

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = build_config(args, data, out, database, classes)
    fix_random_seed(cfg["init_rand_seed"], include_cuda=False)
    torch.use_deterministic_algorithms(True, warn_only=True)
    train_set = make_dataset(cfg["dataset_name"], True, cfg["train_split"], **cfg["dataset"])
    test_set = make_dataset(cfg["dataset_name"], False, cfg["val_split"], **cfg["dataset"])
    # In-process loading (num_workers 0): the machine has 2 cores, and the crops then draw from
    # the seeded global RNGs, which keeps a run reproducible bit for bit.
    loader = torch.utils.data.DataLoader(
        train_set, batch_size=cfg["loader"]["batch_size"], shuffle=True, drop_last=True, num_workers=0,
        collate_fn=trivial_batch_collator, generator=torch.Generator().manual_seed(cfg["init_rand_seed"]))
    model = make_meta_arch(cfg["model_name"], **cfg["model"])
    params = sum(p.numel() for p in model.parameters())
    optimizer = make_optimizer(model, cfg["opt"])
    scheduler = make_scheduler(optimizer, cfg["opt"], len(loader))
    ema = ModelEma(model, decay=SHORT_CPU_BUDGET["ema_decay"])
    clip = cfg["train_cfg"]["clip_grad_l2norm"]
    print(f"[{name}] {len(train_set)} train / {len(test_set)} test videos, {len(classes)} classes, "
          f"input_dim {cfg['dataset']['input_dim']}, stride {args.stride}, max_seq_len "
          f"{cfg['dataset']['max_seq_len']}, {params:,} parameters, {len(loader)} steps an epoch", flush=True)

    # The package's train_one_epoch calls torch.cuda.synchronize() when it logs, which raises on a
    # CPU-only torch: the same steps here (forward, backward, clip, optimizer, scheduler, EMA).
    epoch_s, t0 = [], time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        te, loss_sum = time.perf_counter(), 0.0
        for video_list in loader:
            optimizer.zero_grad(set_to_none=True)
            losses = model(video_list)
            losses["final_loss"].backward()
            if clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            optimizer.step()
            scheduler.step()
            ema.update(model)
            loss_sum += losses["final_loss"].item()
        epoch_s.append(time.perf_counter() - te)
        print(f"[{name}] epoch {epoch + 1}/{args.epochs}: loss {loss_sum / max(1, len(loader)):.4f}, "
              f"lr {scheduler.get_last_lr()[0]:.2e}, {epoch_s[-1]:.1f} s", flush=True)
    train_wall = time.perf_counter() - t0

    # Inference with the EMA copy, one video at a time (the model's inference takes batch 1); its
    # postprocessing already maps the grid back to seconds, (g * stride + 0.5 * window) / fps,
    # clipped to [0, duration].
    net = ema.module.eval()
    results, t0 = {}, time.perf_counter()
    with torch.no_grad():
        for i in range(len(test_set)):
            item = test_set[i]
            det = net([item])[0]
            results[item["video_id"]] = [
                {"label": classes[int(c)], "score": float(s), "segment": [float(a), float(b)]}
                for (a, b), s, c in zip(det["segments"].tolist(), det["scores"].tolist(), det["labels"].tolist())]
    infer_wall = time.perf_counter() - t0
    (out / "results.json").write_text(json.dumps(
        {"version": "actionformer 1.5.0, THUMOS14 recipe", "results": results, "external_data": {}}))

    ev = evaluate(args, data, out, protocol)
    tiou = [round(t, 4) for t in ev["tiou"]]
    at5 = ev["mAP"][min(range(len(tiou)), key=lambda i: abs(tiou[i] - 0.5))]
    avg = ev["average_mAP"]
    summary = {"setting": name, "system": "actionformer", "protocol": protocol, "tiou": tiou,
               "rows": {"all": {"avg_mAP": round(100 * avg, 2), "mAP@0.5": round(100 * at5, 2)}},
               "train_wall_s": round(train_wall, 1), "infer_wall_s": round(infer_wall, 1),
               "epochs": args.epochs, "params": params,
               "epoch_wall_s": [round(s, 1) for s in epoch_s], "max_seq_len": cfg["dataset"]["max_seq_len"],
               "ema_decay": SHORT_CPU_BUDGET["ema_decay"], "seed": cfg["init_rand_seed"],
               "threads": torch.get_num_threads(), "cpp_nms": HAS_CPP_NMS,
               "videos": {"train": len(train_set), "test": len(test_set)},
               "command": [Path(sys.executable).name, *sys.argv]}
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"[{name}] actionformer: average mAP {100 * avg:.2f}, mAP@0.5 {100 * at5:.2f} ({protocol}), "
          f"train {train_wall:.0f} s ({train_wall / args.epochs:.1f} s an epoch, {args.epochs} epochs), infer {infer_wall:.1f} s, "
          f"{params:,} parameters", flush=True)
    return summary


def run_zoo(args) -> int:
    """Every ZOO_DIR/data/<setting> in turn, each in a process of its own (a clean RNG, config
    and memory state a setting), skipping those already summarised."""
    zoo = Path(args.zoo).resolve()
    settings = sorted(d for d in (zoo / "data").iterdir()
                      if d.is_dir() and (d / "annotations.json").exists() and not d.name.endswith(".partial"))
    failed = []
    for d in settings:
        out = zoo / "actionformer" / d.name
        if (out / "summary.json").exists():
            print(f"[{d.name}] done before: {out / 'summary.json'}")
            continue
        cmd = [sys.executable, __file__, "--data", str(d), "--out", str(out), "--epochs", str(args.epochs),
               "--setting", d.name, "--seed", str(args.seed), "--dcltal", args.dcltal]
        cmd += ["--threads", str(args.threads)] if args.threads else []
        if subprocess.run(cmd).returncode:
            failed.append(d.name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", help="data dir in dcltal's layout")
    p.add_argument("--out", help="output dir")
    p.add_argument("--zoo", help="zoo dir: run every ZOO/data/<setting> into ZOO/actionformer/<setting>")
    p.add_argument("--epochs", type=int, default=10, help="epochs in all, warm-up included (default 10)")
    p.add_argument("--setting", help="name in summary.json (default: setting.json / zoo.json, else the dir name)")
    p.add_argument("--stride", type=int, help="frames between snippets (default: setting.json / zoo.json)")
    p.add_argument("--window", type=int, help="frames a snippet covers (default: setting.json, else 16)")
    p.add_argument("--fps", type=float, default=30.0, help="for videos whose annotation has no fps")
    p.add_argument("--max-seq-len", type=int, help="training crop (default: the longest training video, rounded up)")
    p.add_argument("--train-subset", default="Validation")
    p.add_argument("--test-subset", default="Test")
    p.add_argument("--seed", type=int, default=SEED)
    p.add_argument("--threads", type=int, help="torch threads (default: torch's, one a core)")
    p.add_argument("--dcltal", default=str(ROOT / ".venv" / "bin" / "dcltal"), help="the dcltal command that scores")
    args = p.parse_args(argv)
    if args.zoo:
        return run_zoo(args)
    if not (args.data and args.out):
        p.error("give --data and --out, or --zoo")
    run_one(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
