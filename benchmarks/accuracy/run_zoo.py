"""Run dcltal across the accuracy zoo: generate each setting's data, train, detect, score.

    python benchmarks/accuracy/run_zoo.py --out zoo-runs [--settings a,b] [--set KEY=VALUE ...]
                                          [--tag NAME] [--jobs 1] [--quick]

Per setting: the data into OUT/data/<setting> (once; reused while the setting is unchanged);
``dcltal train`` with the shipped config (configs/thumos14_i3d.yaml or anet13_i3d.yaml), only the
``data.*`` keys pointed at the data, plus the ``--set`` extras given here (how a candidate change
is tried across the zoo); detection on the Test subset with last.pt: fused as configured, each
stream alone (its detector and its video-level classifier only), fused without video-level scores,
and fused with best.pt where training wrote one; the config's protocol (THUMOS14 at tIoU 0.3:0.1:0.7,
ActivityNet at 0.5:0.05:0.95) scores each. OUT/runs/<tag>/<setting>/summary.json holds the figures
(docs/benchmarks.md has the schema); a line a setting is printed.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from generator import VERSION, write_setting
from settings import KNOWN, SETTINGS, Setting, quick

REPO = Path(__file__).resolve().parents[2]
# the built-in generator's training: BMN's optimiser, as docs/proposals.md and `dcltal demo` train it
GENERATOR = ["model.kind=proposals", "train.optimizer=adam", "train.lr=0.001", "train.weight_decay=0.0001",
             "train.epochs=8", "train.lr_steps=[6]", "train.val_every=2"]
QUICK_SETS = ["train.epochs=1", "train.lr_steps=[]"]


def dcltal(*args: str, log: Path) -> tuple[float, float]:
    """Run ``python -m dcltal ARGS`` (output to ``log``); its wall and CPU seconds (the CPU time of
    this process's children, exact with --jobs 1: on a shared machine it says what the wall time
    does not). A failure stops the setting."""
    started, cpu = time.time(), children_cpu()
    # PYTHONSAFEPATH: the child must not put its working directory first on sys.path, so that it
    # imports the same dcltal as this process (which scores what the child trained)
    with open(log, "a") as out:
        done = subprocess.run([sys.executable, "-m", "dcltal", *args], stdout=out, stderr=subprocess.STDOUT,
                              env={**os.environ, "PYTHONSAFEPATH": "1"})
    if done.returncode:
        raise RuntimeError(f"dcltal {args[0]} failed (exit {done.returncode}); see {log}")
    return time.time() - started, children_cpu() - cpu


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def ensure_data(setting: Setting, data: Path) -> dict:
    """The setting's data directory, written unless zoo.json says it holds this very setting from
    this version of the generator."""
    meta, want = data / "zoo.json", {"generator": VERSION, "setting": json.loads(json.dumps(dataclasses.asdict(setting)))}
    if not (meta.is_file() and {k: json.loads(meta.read_text()).get(k) for k in want} == want):
        print(f"[{setting.name}] generating {data}", file=sys.stderr, flush=True)
        write_setting(setting, data)
    return json.loads(meta.read_text())["stats"]


def data_sets(setting: Setting, data: Path, proposals: Path) -> list[str]:
    """The data.* overrides that point the shipped config at the setting's data (the only keys changed)."""
    d = setting.dim
    return [f"data.annotations={data / 'annotations.json'}", f"data.features={data / 'features'}",
            f"data.proposals={proposals}", f"data.classes={data / 'classes.txt'}",
            f"data.streams={{rgb: [0, {d}], flow: [{d}, {2 * d}]}}", f"data.feature_stride={setting.stride}",
            f"data.fps={setting.fps:g}", "data.train_subset=Validation", "data.test_subset=Test"]


def builtin_proposals(setting: Setting, data: Path, quick_run: bool) -> tuple[Path, dict]:
    """Train dcltal's proposal generator on the setting's train split and propose for every video
    (once, beside the data, so every tag detects on the same proposals); the file and its recall."""
    out, recall_file = data / "proposals_builtin.json", data / "proposals_builtin.recall.json"
    if not recall_file.is_file():
        work = data / "generator"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        sets = [*data_sets(setting, data, data / "none"), *GENERATOR, *(QUICK_SETS if quick_run else [])]
        print(f"[{setting.name}] training the built-in proposal generator", file=sys.stderr, flush=True)
        train_s, _ = dcltal("train", str(REPO / setting.config), "--work-dir", str(work), "--set", *sets, log=work / "log.txt")
        ckpt = work / "checkpoints" / ("best.pt" if (work / "checkpoints" / "best.pt").is_file() else "last.pt")
        propose_s, _ = dcltal("propose", str(REPO / setting.config), "--checkpoint", str(ckpt), "--out", str(out),
                           "--set", *sets, "data.annotations=null", log=work / "log.txt")
        from dcltal.data.annotations import load_annotations
        from dcltal.data.proposals import load_proposals
        from dcltal.eval import evaluate_proposals

        ann = load_annotations(data / "annotations.json", data / "classes.txt")
        props = load_proposals(out, {v.id: v for v in ann.in_subset("Test")}, setting.fps)
        recall = evaluate_proposals(ann, props, "Test")
        recall = {k: recall[k] for k in ("AR@100", "recall@0.5", "recall@0.7")}
        recall_file.write_text(json.dumps({**recall, "checkpoint": str(ckpt), "train_wall_s": round(train_s, 1),
                                           "propose_wall_s": round(propose_s, 1)}, indent=1))
    return out, json.loads(recall_file.read_text())


def last_epoch(metrics: Path) -> tuple[dict, dict]:
    """From metrics.csv, the last epoch's loss terms per stream and every column named health*."""
    with open(metrics, newline="") as f:
        rows = list(csv.DictReader(f))
    last = max(int(r["epoch"]) for r in rows)
    losses, health = {}, {}
    for r in rows:
        if int(r["epoch"]) != last:
            continue
        stream = r.get("stream", "")
        losses.update({f"{stream}.{k}": float(r[k]) for k in ("cls", "com") if r.get(k) not in (None, "")})
        health.update({f"{stream}.{k}": float(v) for k, v in r.items() if k.startswith("health") and v not in (None, "")})
    return losses, health


def score(cfg, checkpoint: Path, with_streams: bool) -> dict:
    """mAP rows of ``checkpoint`` on the Test subset: fused as configured, and with ``with_streams``
    each stream alone and fused without video-level scores. One forward pass; the rows differ only
    in what is fused (engine.detection.inference.video_detections and the video-level fusion renormalise the
    weights of the streams they are given, so one stream passes through alone)."""
    from dcltal.data.annotations import load_annotations
    from dcltal.engine.detection.inference import predict_streams, results_json, video_detections
    from dcltal.data.videos import load_videos
    from dcltal.engine.detection.predictor import Predictor
    from dcltal.engine.detection.video_classifier import video_level_scores
    from dcltal.errors import UserError
    from dcltal.eval import evaluate_results

    predictor = Predictor.from_checkpoint(checkpoint, cfg.train.device)
    test = load_videos(cfg.data, "Test", avoid=False, classes=predictor.classes)
    annotations = load_annotations(cfg.data.annotations, cfg.data.classes)
    infer = predictor.infer_settings(cfg.infer)  # held_out: the weights the run's validation chose
    predictions = list(predict_streams(predictor.models, test, predictor.coder, infer,
                                       extend_ratio=cfg.model.extend_ratio))
    streams = list(predictor.models)

    def level(names: list[str]) -> dict | None:
        """Video-level scores; for one stream, from that stream's built-in classifier alone."""
        if len(names) == len(streams) or infer.video_scores != "builtin":
            return predictor.video_scores(test, infer)
        classifiers = {s: predictor.video_classifiers[s] for s in names}
        return {v.id: video_level_scores(classifiers, v.features, infer.stream_weights) for v in test}

    def row(names: list[str], video_scores: bool) -> dict:
        scores = level(names) if video_scores else None
        results = results_json({v.id: video_detections(v, {s: p[s] for s in names}, infer, predictor.classes, scores)
                                for v, p in predictions})
        try:
            m = evaluate_results(annotations, results, "Test", cfg.eval.tiou, cfg.eval.protocol)
        except UserError as e:  # e.g. NaN scores from a diverged stream: no figure, the reason instead
            return {"avg_mAP": None, "mAP@0.5": None, "error": str(e)}
        at = min(range(len(m["tiou"])), key=lambda i: abs(m["tiou"][i] - 0.5))
        return {"avg_mAP": round(100 * m["average_mAP"], 2), "mAP@0.5": round(100 * m["mAP"][at], 2)}

    rows = {"fused": row(streams, True)}
    rows["fused"]["stream_weights"] = infer.stream_weights
    if with_streams:
        rows.update({s: row([s], True) for s in streams})
        rows["no_video_scores"] = row(streams, False)
    return rows


def chosen_weights(cfg, checkpoint: Path) -> dict[str, float]:
    """The stream weights ``infer.stream_weights: held_out`` chooses for ``checkpoint``: training's
    validation, on the held-out training videos, with its video-level classifier."""
    from dcltal.data.videos import load_videos, split_videos
    from dcltal.engine.detection.predictor import Predictor
    from dcltal.engine.detection.task import validate_detectors
    from dcltal.engine.detection.video_classifier import stream_probabilities

    predictor = Predictor.from_checkpoint(checkpoint, "cpu")
    videos = load_videos(cfg.data, cfg.data.train_subset, classes=predictor.classes)
    _, held = split_videos(len(videos), cfg.train.val_fraction, cfg.train.seed)
    val = videos.subset(held)
    probs = {v.id: stream_probabilities(predictor.video_classifiers, v.features) for v in val}
    held_out = dataclasses.replace(cfg, infer=dataclasses.replace(cfg.infer, stream_weights="held_out"))
    scores = validate_detectors(predictor.models, val, predictor.coder, held_out, probs)
    return {s: scores[f"weight_{s}"] for s in predictor.models}


def logged_training_seconds(log: Path) -> float:
    """Wall seconds of the training in ``log`` (train.log's timestamps: its first line to "finished")."""
    stamps = [line[:19] for line in log.read_text().splitlines() if line[:4].isdigit() and " INFO " in line]
    ends = [line[:19] for line in log.read_text().splitlines() if line.endswith("INFO finished")]
    parse = lambda t: time.mktime(time.strptime(t, "%Y-%m-%d %H:%M:%S"))  # noqa: E731
    return parse(ends[-1]) - parse(stamps[0])


def run_setting(setting: Setting, out: Path, tag: str, extras: list[str], quick_run: bool,
                score_only: bool = False) -> dict:
    from dcltal.config import load_config
    from dcltal.engine.device import set_cpu_threads

    started = time.time()
    data = out / "data" / setting.name
    stats = ensure_data(setting, data)
    proposals, recall = (builtin_proposals(setting, data, quick_run) if setting.proposals == "builtin"
                         else (data / "proposals", stats["proposal_recall"]))
    work = out / "runs" / tag / setting.name
    sets = [*data_sets(setting, data, proposals), *extras, *(QUICK_SETS if quick_run else [])]
    if score_only:  # a finished training whose scoring failed: its checkpoints as they are
        train_s, train_cpu = logged_training_seconds(work / "train.log"), None
    else:
        shutil.rmtree(work, ignore_errors=True)  # a tag re-run is a fresh run
        work.mkdir(parents=True)
        print(f"[{setting.name}] training ({tag})", file=sys.stderr, flush=True)
        train_s, train_cpu = dcltal("train", str(REPO / setting.config), "--work-dir", str(work), "--set", *sets,
                                    log=work / "train.log")
    cfg = load_config(REPO / setting.config, sets)
    set_cpu_threads(cfg.train.threads)
    rows = score(cfg, work / "checkpoints" / "last.pt", with_streams=True)
    best = work / "checkpoints" / "best.pt"
    if best.is_file():
        rows["fused_best_pt"] = score(cfg, best, with_streams=False)["fused"]
    losses, health = last_epoch(work / "metrics.csv")
    summary = {"setting": setting.name, "system": "dcltal", "tag": tag, "protocol": cfg.eval.protocol,
               "tiou": cfg.eval.tiou, "checkpoint": "last.pt", "rows": rows, "train_wall_s": round(train_s, 1),
               "train_cpu_s": None if train_cpu is None else round(train_cpu, 1), "setting_wall_s": round(time.time() - started, 1),
               "load_average": os.getloadavg()[0], "last_losses": losses, "health": health,
               "proposal_recall": recall, "data": stats, "command": {"config": setting.config, "set": sets}}
    (work / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def rescore_setting(setting: Setting, out: Path, tag: str) -> dict:
    """``--rescore``: a finished run's detectors as they are, its built-in video-level classifier
    trained again with the current code on the same training videos (as ``dcltal train`` does before
    the detector), and every row scored again; the summary keeps the previous rows under ``rows_before``."""
    from dcltal.config import load_config
    from dcltal.engine.checkpoint import load_checkpoint, save_checkpoint
    from dcltal.engine.detection.task import detector_tasks
    from dcltal.engine.detection.video_classifier import train_video_classifier

    work = out / "runs" / tag / setting.name
    summary = json.loads((work / "summary.json").read_text())
    cfg = load_config(REPO / setting.config, summary["command"]["set"])
    train = next(iter(detector_tasks(cfg)[0].values())).train
    feats = [{s: np.asarray(f, dtype=np.float32) for s, f in v.features.items()} for v in train]
    states = train_video_classifier(feats, [v.labels for v in train], len(train.classes), seed=cfg.train.seed,
                                    progress=False)
    rows = {}
    for name, key in (("last.pt", None), ("best.pt", "fused_best_pt")):
        path = work / "checkpoints" / name
        if not path.is_file():
            continue
        rescored = path.with_name(f"{path.stem}_rescored.pt")
        ckpt = {**load_checkpoint(path), "video_classifier": states}
        ckpt.pop("stream_weights", None)  # chosen with the old classifier: choose again with the new one
        save_checkpoint(rescored, ckpt)
        if cfg.infer.stream_weights == "held_out":
            save_checkpoint(rescored, {**ckpt, "stream_weights": chosen_weights(cfg, rescored)})
        scored = score(cfg, rescored, with_streams=key is None)
        rows.update(scored if key is None else {key: scored["fused"]})
    summary.update(rows_before=summary.get("rows_before", summary["rows"]), rows=rows, rescored=True)
    (work / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def figure(x: float | None) -> str:
    return "  n/a" if x is None else f"{x:5.1f}"


def line(s: dict) -> str:
    r = s["rows"]
    cells = " ".join(f"{k} {figure(r[k]['avg_mAP'])}/{figure(r[k]['mAP@0.5'])}" for k in ("fused", "rgb", "flow", "no_video_scores"))
    com = " ".join(f"{k}={v:.3f}" for k, v in s["last_losses"].items() if k.endswith(".com"))
    return f"{s['setting']:<22} {cells}  train {s['train_wall_s']:6.0f} s  {com}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="data in OUT/data, runs in OUT/runs/TAG")
    parser.add_argument("--settings", default=",".join(SETTINGS), help=f"comma-separated, of: {', '.join(KNOWN)} (default: all but the large {', '.join(sorted(set(KNOWN) - set(SETTINGS)))})")
    parser.add_argument("--set", dest="extras", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="config overrides added to every setting's training and inference (a candidate change)")
    parser.add_argument("--tag", default="default", help="name of this run (OUT/runs/TAG); report.py --compare takes two")
    parser.add_argument("--jobs", type=int, default=1, help="settings run at once (each trains with the config's threads)")
    parser.add_argument("--quick", action="store_true", help="a tiny size of each setting and 1 epoch: checks the chain")
    parser.add_argument("--score-only", action="store_true", help="no training: score the tag's finished trainings as "
                        "they are (where the scoring failed; the training time from their train.log)")
    parser.add_argument("--rescore", action="store_true", help="no training: the tag's finished runs scored again with "
                        "their video-level classifier retrained by the current code (after a change to it)")
    args = parser.parse_args(argv)
    names = [n for n in args.settings.split(",") if n]
    unknown = [n for n in names if n not in KNOWN]
    if unknown:
        parser.error(f"unknown settings {unknown}; known: {', '.join(KNOWN)}")
    chosen = [quick(KNOWN[n]) if args.quick else KNOWN[n] for n in names]
    import dcltal.runtime

    dcltal.runtime.tune_process()  # before torch loads, as the dcltal command does (scoring runs in this process)

    def one(setting: Setting) -> dict | None:
        try:
            summary = (rescore_setting(setting, args.out, args.tag) if args.rescore
                       else run_setting(setting, args.out, args.tag, args.extras, args.quick, args.score_only))
        except Exception as e:  # one failing setting must not lose the others' results
            print(f"[{setting.name}] FAILED: {e}", file=sys.stderr, flush=True)
            return None
        print(line(summary), flush=True)
        return summary

    print(f"{'setting':<22} rows: avg mAP / mAP@0.5 (%), last.pt; last epoch's completeness loss per stream")
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(one, chosen))
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
