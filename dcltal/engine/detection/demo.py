"""The demo's experiment (``dcltal demo [--out DIR] [--proposals benchmark|builtin]``): the synthetic
benchmark end to end, with a report.

Synthesise the benchmark (``dcltal synth``), train both streams with ``configs/synth.yaml``, detect
on the test split per stream and fused, evaluate (THUMOS14 protocol, tIoU 0.3..0.7), and write
DIR/report.md with the mAP table, a trivial baseline beside it, the proposals' recall, and figures.
:func:`run_demo` returns what the command prints: where the report is, the fused mAP@0.5 beside the
baselines', and the proposals' recall. Row labels name the config's streams and fusion weights.

``--proposals builtin`` runs the chain from features and annotations alone: before the detector, it
trains the built-in proposal generator (``model.kind: proposals``, docs/proposals.md), proposes for
the train and test subsets (as ``dcltal propose``), writes DIR/proposals_builtin.json and points
``data.proposals`` at it. The default, ``benchmark``, uses the BSN-like proposals the synthetic
benchmark ships.
"""
from __future__ import annotations

import dataclasses
import platform
import sys
import time
from pathlib import Path

import numpy as np

# sizes of the demo; "full" trains as configs/synth.yaml says; "tiny" is for the test suite (seconds)
SIZES = {
    "full": {"videos_train": 100, "videos_test": 50, "classes": 8, "dim": 64, "overrides": []},
    "tiny": {"videos_train": 6, "videos_test": 3, "classes": 4, "dim": 16,
             "overrides": ["train.epochs=1", "train.lr_steps=[]", "model.hidden_dim=8", "model.cls_hidden=32",
                           "model.loc_hidden=48"]},
}
# the built-in generator's training (--proposals builtin), over configs/synth.yaml and the size's overrides:
# BMN's optimiser as docs/proposals.md trains it; the default windows (two snippets a location), which
# docs/proposals.md keeps because they fit the demo's budget (one snippet a location: +6 AUC, 4x the time)
GENERATOR = {
    "full": ["train.optimizer=adam", "train.lr=0.001", "train.weight_decay=0.0001", "train.epochs=8",
             "train.schedule=step", "train.lr_steps=[6]", "train.warmup_epochs=0", "train.clip_grad_norm=0",
             "train.ema_decay=0", "train.val_every=2"],
    "tiny": ["train.optimizer=adam", "train.lr=0.001", "train.weight_decay=0.0001", "train.epochs=1",
             "train.schedule=step", "train.lr_steps=[]", "train.warmup_epochs=0", "train.clip_grad_norm=0",
             "train.ema_decay=0", "proposals.temporal_scale=32", "proposals.max_duration=16",
             "proposals.snippets_per_location=6", "proposals.hidden_1d=8",
             "proposals.hidden_3d=8", "proposals.hidden_2d=4", "proposals.groups=2", "proposals.num_samples=4"],
}
PROPOSALS = {
    "benchmark": ("the synthetic benchmark's BSN-like proposals (drawn around every ground truth with jitter, "
                  "plus background ones; scored 0.8 tIoU + 0.15 + noise)"),
    "builtin": "the built-in BMN-style generator's (model.kind: proposals), trained here on the train split",
}
SEED = 0
BASELINE = "proposal score, video's top class (no detector)"
PIPELINE_BASELINE = "proposal score x video-level scores (top classes), NMS (no detector)"


def demo_config(out: Path, size: str, proposals: Path | None = None, extra: tuple[str, ...] = ()):
    """configs/synth.yaml with its data paths moved under ``out`` (``proposals``: data.proposals in
    place of the benchmark's; ``extra``: further overrides)."""
    from dcltal.config import load_config

    s, synth, d = SIZES[size], out / "synth", SIZES[size]["dim"]
    overrides = [f"data.annotations={synth / 'annotations.json'}", f"data.features={synth / 'features'}",
                 f"data.proposals={proposals or synth / 'proposals'}", f"data.classes={synth / 'classes.txt'}",
                 f"data.streams={{rgb: [0, {d}], flow: [{d}, {2 * d}]}}", f"model.num_classes={s['classes']}",
                 f"train.seed={SEED}", *s["overrides"], *extra]
    cfg = load_config(Path(__file__).resolve().parents[2] / "configs" / "synth.yaml", overrides)
    from dcltal.engine.device import set_cpu_threads

    set_cpu_threads(cfg.train.threads)
    return cfg


def builtin_proposals(out: Path, size: str, progress: bool) -> tuple[Path, str]:
    """Train the built-in generator on the train split, propose for the train and test subsets and
    write them to DIR/proposals_builtin.json; returns the file and a line saying how it was made."""
    from dcltal.data.proposals import write_proposal_json
    from dcltal.data.videos import load_videos
    from dcltal.engine.proposals.decoding import generate_proposals
    from dcltal.engine.proposals.task import load_generator
    from dcltal.engine.schedule import describe_schedule
    from dcltal.engine.trainer import train

    cfg = demo_config(out, size, extra=("model.kind=proposals", *GENERATOR[size]))
    started = time.time()
    checkpoint = train(cfg, out / "generator", progress=progress)
    trained = time.time()
    _say(f"  proposing for subsets {cfg.data.train_subset} and {cfg.data.test_subset}")
    model, settings, streams = load_generator(checkpoint, cfg)
    proposals = {}
    for subset in (cfg.data.train_subset, cfg.data.test_subset):
        videos = load_videos(cfg.data, subset, proposals=False, avoid=False)
        proposals.update(generate_proposals(model, videos, settings, streams, progress=progress))
    path = out / "proposals_builtin.json"
    write_proposal_json(path, proposals)
    p, t = settings, cfg.train
    how = (f"{PROPOSALS['builtin']}: {t.epochs} epochs, {t.optimizer} lr {t.lr:g} ({describe_schedule(t)}), "
           f"weight decay {t.weight_decay:g}, windows of {p.temporal_scale} locations {p.snippets_per_location:g} "
           f"snippets apart, durations up to {p.max_duration} locations, Soft-NMS sigma {p.soft_nms_sigma:g}, "
           f"at most {p.max_proposals} a video; checkpoint {checkpoint}; {path} "
           f"(generator training {trained - started:.0f} s, proposing {time.time() - trained:.0f} s wall)")
    return path, how


def baseline_results(test, video_scores: dict[str, np.ndarray], classes: list[str], max_detections: int) -> dict:
    """The trivial baseline: every proposal keeps its own (BSN-like) score and takes the video's most
    likely class from the video-level classifier; no detector, no regression, no NMS."""
    results = {}
    for v in test:
        props = np.asarray(v.proposals, dtype=np.float64)
        label = classes[int(np.argmax(video_scores[v.id]))]
        best = np.argsort(-props[:, 2], kind="stable")[:max_detections]
        results[v.id] = [{"label": label, "score": float(props[i, 2]), "segment": [float(props[i, 0]), float(props[i, 1])]}
                         for i in best]
    return {"version": "baseline", "results": results, "external_data": {}}


def proposal_only(video, scores, bounds):
    """A stream's predictions with the detector taken out: each proposal's own score for every
    class ([N, C]) and its own boundaries (shaped as ``bounds``)."""
    import torch

    props = torch.as_tensor(np.asarray(video.proposals, dtype=np.float64), dtype=scores.dtype, device=scores.device)
    original = props[:, :2] if bounds.dim() == 2 else props[:, None, :2].expand_as(bounds)
    return props[:, 2:3].expand_as(scores), original


def stream_label(streams, weights: dict[str, float] | None = None) -> str:
    """A report row's streams as the config names them: "RGB", "RGB + Flow", with ``weights`` "RGB + Flow (5:6)"."""
    names = " + ".join({"rgb": "RGB"}.get(s, s.capitalize()) for s in streams)
    if weights is None or len(streams) < 2:
        return names
    return f"{names} ({':'.join(f'{weights.get(s, 0):g}' for s in streams)})"


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@dataclasses.dataclass
class DemoResult:
    report: Path
    label: str  # the fused row's streams and weights, e.g. "RGB + Flow (5:6)"
    fused: dict  # the fused row's metrics (evaluate_results)
    baselines: tuple[dict, dict]  # the two baselines' metrics
    recall: dict  # the test proposals' AR@AN and AUC
    wall_s: float


def run_demo(out: Path, size_name: str = "full", proposals: str = "benchmark", progress: bool = True) -> DemoResult:
    """Synthesise, train, detect, evaluate and write DIR/report.md (the module docstring)."""
    import torch

    from dcltal.data.annotations import load_annotations
    from dcltal.data.synth import write_synthetic
    from dcltal.data.videos import load_videos
    from dcltal.engine.detection.inference import predict_streams, results_json, video_detections
    from dcltal.engine.detection.predictor import Predictor
    from dcltal.engine.detection.report import Report, ReportRow, write_report
    from dcltal.engine.schedule import describe_schedule
    from dcltal.engine.trainer import train
    from dcltal.eval import evaluate_proposals, evaluate_results
    from dcltal.viz.curves import plot_training_curves
    from dcltal.viz.video import video_figures

    started, cpu_started = time.time(), time.process_time()
    out, size, builtin = Path(out), SIZES[size_name], proposals == "builtin"
    steps = iter(range(1, 6 if builtin else 5))

    def step(text: str) -> None:
        _say(f"[{next(steps)}/{5 if builtin else 4}] {text}")

    step(f"synthesising the benchmark in {out / 'synth'}")
    summary = write_synthetic(out / "synth", seed=SEED, videos_train=size["videos_train"],
                              videos_test=size["videos_test"], classes=size["classes"], dim=size["dim"],
                              progress=progress)
    proposals_used = PROPOSALS["benchmark"]
    proposals_path = None
    if builtin:
        step("training the built-in proposal generator, then proposing")
        proposals_path, proposals_used = builtin_proposals(out, size_name, progress)
    cfg = demo_config(out, size_name, proposals_path)
    step("training both streams")
    checkpoint = train(cfg, out / "work", progress=progress)
    step("detecting on the test split and evaluating")
    predictor = Predictor.from_checkpoint(checkpoint, cfg.train.device)
    test = load_videos(cfg.data, cfg.data.test_subset, avoid=False, classes=predictor.classes)
    annotations = load_annotations(cfg.data.annotations, cfg.data.classes)
    recall = evaluate_proposals(annotations, {v.id: v.proposals for v in test}, cfg.data.test_subset)
    infer = predictor.infer_settings(cfg.infer)  # held_out: the weights training chose
    level = predictor.video_scores(test, infer)
    ev = cfg.eval

    def evaluate(results):
        return evaluate_results(annotations, results, cfg.data.test_subset, ev.tiou, ev.protocol)

    method = "ours: D-Net + A-Net" if cfg.model.variant == "dnet" else f"variant {cfg.model.variant}"
    predictions = list(predict_streams(predictor.models, test, predictor.coder, infer,
                                       extend_ratio=cfg.model.extend_ratio, progress=progress))

    def rows_for(streams, scores, settings=infer):  # fusion and NMS of the stored stream predictions
        return results_json({v.id: video_detections(v, {s: p[s] for s in streams}, settings, predictor.classes, scores)
                             for v, p in predictions})

    with_level = f"video-level scores: built-in classifier, top {infer.video_top_k} classes"
    streams, weights = list(cfg.data.streams), infer.stream_weights
    fused_label = stream_label(streams, weights)
    rows = [ReportRow(method, stream_label([s]), evaluate(rows_for([s], level)), with_level) for s in streams]
    fused_results = rows_for(streams, level)
    fused = ReportRow(method, fused_label, evaluate(fused_results), with_level)
    rows.append(fused)
    rows.append(ReportRow(method, fused_label, evaluate(rows_for(streams, None)), "no video-level scores"))
    table6 = dataclasses.replace(infer, proposal_score="multiply")
    rows.append(ReportRow(method, fused_label, evaluate(rows_for(streams, level, table6)),
                          with_level + "; times each proposal's own score (infer.proposal_score=multiply, "
                          "the paper's Table 6 setting)"))
    baseline = ReportRow("baseline: " + BASELINE, stream_label(streams),
                         evaluate(baseline_results(test, level, predictor.classes, infer.max_detections)),
                         "class from the built-in video-level classifier")
    plain = results_json({v.id: video_detections(v, {s: proposal_only(v, *p[s]) for s in p}, infer,
                                                  predictor.classes, level) for v, p in predictions})
    pipeline = ReportRow("baseline: " + PIPELINE_BASELINE, stream_label(streams), evaluate(plain),
                         "the inference above with the detector's scores and regression taken out")
    rows += [baseline, pipeline]

    step("figures and report")
    figures = []
    metrics = out / "work" / "metrics.csv"
    if metrics.is_file():
        plot_training_curves(metrics, out / "training_curves.png", title="training (metrics.csv)")
        figures.append(("training curves: losses and validation mAP per stream", "training_curves.png"))
    shown = max(test, key=lambda v: len(annotations.videos[v.id].segments))
    gt = annotations.videos[shown.id]
    figures += video_figures(predictor.models, shown.id, shown.grid, shown.features, gt.segments,
                             [predictor.classes[c] for c in gt.labels], fused_results["results"][shown.id],
                             float(shown.duration or gt.duration), out)
    device = "cuda" if torch.cuda.is_available() and cfg.train.device != "cpu" else "cpu"
    wall, cpu = time.time() - started, time.process_time() - cpu_started
    report = Report(
        title="dcltal demo: the synthetic benchmark",
        setting={
            "data": (f"synthetic (dcltal synth, seed {SEED}): {summary['videos']['Validation']} train / "
                     f"{summary['videos']['Test']} test videos, {summary['classes']} classes, "
                     f"{summary['instances']['Test']} test instances"),
            "proposals": proposals_used,
            "features": (f"synthetic snippet features, {summary['dim']} per stream (rgb {summary['streams']['rgb']}, "
                         f"flow {summary['streams']['flow']}); snippet stride {cfg.data.feature_stride} frames, "
                         f"window {cfg.data.feature_window}, {cfg.data.fps:g} fps"),
            "model": (f"variant {cfg.model.variant}, D_h {cfg.model.hidden_dim}, cls MLP {cfg.model.cls_hidden}, "
                      f"loc MLP {cfg.model.loc_hidden}, regression {cfg.model.regression}; one model per stream"),
            "training": (f"{cfg.train.epochs} epochs, {cfg.train.optimizer} lr {cfg.train.lr:g} "
                         f"({describe_schedule(cfg.train)}), {cfg.train.videos_per_batch} videos a step, "
                         f"seed {cfg.train.seed}, checkpoint {checkpoint}"),
            "inference": (f"fusion RGB:Flow = {infer.stream_weights.get('rgb', 0):g}:"
                          f"{infer.stream_weights.get('flow', 0):g} (scores and boundaries), video-level scores "
                          f"{infer.video_scores} (top {infer.video_top_k} classes), top {infer.top_k} pairs, "
                          f"{infer.nms} NMS at {infer.nms_iou:g}, order {infer.order}, "
                          f"at most {infer.max_detections} detections a video"),
            "evaluation": f"{ev.protocol} protocol, tIoU {', '.join(f'{t:g}' for t in ev.tiou)}, subset {cfg.data.test_subset}",
            "device": f"{device} ({platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads)",
            "wall time": f"{wall:.0f} s for the whole demo ({cpu:.0f} s CPU time of the process, all threads)",
            "command": f"dcltal demo --out {out}" + (" --proposals builtin" if builtin else ""),
        },
        rows=rows,
        proposals=recall,
        figures=figures,
        notes=["The baselines show what the proposals and the video-level classifier give without the detector: "
               "the first takes each proposal as it is with the video's most likely class; the second runs the "
               "same inference as the model rows (video-level scores of the top classes, NMS) with each proposal's "
               "own score in place of Eq. 16 and its own boundaries in place of the regression. The rows above "
               "them are the trained models, per stream and fused.",
               "The Table 6 row multiplies each proposal's own score into the fused scores, as the paper combines "
               "its detections with BMN's proposal scores on ActivityNet."],
    )
    return DemoResult(write_report(report, out), fused_label, fused.metrics, (baseline.metrics, pipeline.metrics), recall, wall)
