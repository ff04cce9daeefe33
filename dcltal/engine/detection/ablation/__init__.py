"""The paper's ablation study (§4.1, Tables 1-4) on any dataset a config names (``dcltal ablate``).

Per seed s (``train.seed`` = the config's seed + s) and model variant, both streams are trained with
the ordinary trainer into ``DIR/runs/<variant>/seed<s>/`` (a finished run is skipped, a killed one
resumes from its last.pt). Every table row is a *recipe*: classification from one trained variant,
completeness and regression from another (the ``--cls-from/--loc-from`` machinery, Table 3), and the
test-time regrouping of the disentangled features (``infer.cls_feature/loc_feature``, Table 2).
Each recipe is detected once on the test split, per stream and fused (5:6), and evaluated with the
config's protocol and ``eval.tiou``. Cells are mean ± std over seeds (sample std, ddof = 1).
"""
from __future__ import annotations

import dataclasses
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from dcltal.config import VARIANTS, Config
from dcltal.engine.detection.ablation.report import machine, render, summarise
from dcltal.engine.detection.fusion import HELD_OUT
from dcltal.errors import UserError
from dcltal.io import read_json, write_json, write_text


@dataclass(frozen=True)
class Recipe:
    """One table row's model: which trained variant classifies, which localizes, on which features."""

    cls_variant: str
    loc_variant: str
    cls_feature: str = "cls"
    loc_feature: str = "loc"

    @property
    def variants(self) -> set[str]:
        return {self.cls_variant, self.loc_variant}

    @property
    def key(self) -> str:
        return f"{self.cls_variant}:{self.cls_feature}/{self.loc_variant}:{self.loc_feature}"


@dataclass(frozen=True)
class Table:
    id: str
    title: str
    head: tuple[str, ...]  # the label columns of the paper's layout
    rows: tuple[tuple[tuple[str, ...], Recipe], ...]
    params: bool = False  # Table 1: #Params of one stream


def _same(variant: str) -> Recipe:
    return Recipe(variant, variant)


TABLES = (
    Table("table1", "Table 1: the disentanglement network (D-Net) against the aggregation-only baseline and MLPs",
          ("Method",), ((("Baseline",), _same("baseline")), (("+ MLP1",), _same("mlp1")),
                        (("+ MLP2",), _same("mlp2")), (("+ D-Net",), _same("dnet"))), params=True),
    Table("table2", "Table 2: the dnet model with its features regrouped at test time",
          ("Cls.", "Loc."), ((("F_cls", "F_loc"), Recipe("dnet", "dnet", "cls", "loc")),
                             (("F_cls", "F_cls"), Recipe("dnet", "dnet", "cls", "cls")),
                             (("F_loc", "F_loc"), Recipe("dnet", "dnet", "loc", "loc")),
                             (("F_loc", "F_cls"), Recipe("dnet", "dnet", "loc", "cls")))),
    Table("table3", "Table 3: the proposal features F_pro (the baseline model) against the disentangled ones, per task",
          ("Cls.", "Loc."), ((("F_pro", "F_pro"), _same("baseline")),
                             (("F_pro", "F_loc"), Recipe("baseline", "dnet")),
                             (("F_cls", "F_pro"), Recipe("dnet", "baseline")),
                             (("F_cls", "F_loc"), _same("dnet")))),
    Table("table4", "Table 4: alternative design choices of the disentanglement network",
          ("Method",), ((("Random vectors",), _same("random")), (("Only common",), _same("only_common")),
                        (("W/o common",), _same("no_common")), (("Ours",), _same("dnet")))),
)


def check_variants(names: list[str] | None) -> list[str]:
    """The requested variants in the canonical order (all where ``names`` is None)."""
    if names is None:
        return list(VARIANTS)
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise UserError(f"--variants: unknown variant {unknown[0]!r} (choose from: {', '.join(VARIANTS)})")
    return [v for v in VARIANTS if v in names]


def run_config(cfg: Config, variant: str, seed: int) -> Config:
    """The study's config with ``model.variant`` and ``train.seed`` (base seed + ``seed``) set."""
    return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, variant=variant),
                               train=dataclasses.replace(cfg.train, seed=cfg.train.seed + seed))


def train_run(cfg: Config, run_dir: Path, progress: bool = True,
              video_classifier: dict | None = None) -> tuple[Path, bool]:
    """Train both streams into ``run_dir`` unless done.json says a finished run is there; a run
    killed part way resumes from its last.pt (``video_classifier``: see ``trainer.train``). Returns
    (the checkpoint to use, whether it trained)."""
    from dcltal.engine.trainer import train

    done = run_dir / "done.json"
    if done.is_file():
        checkpoint = run_dir / read_json(done)["checkpoint"]
        if checkpoint.is_file():
            _check_same_settings(cfg, checkpoint)
            return checkpoint, False
    started = time.time()
    resume = (run_dir / "checkpoints" / "last.pt").is_file()
    if resume:
        _check_same_settings(cfg, run_dir / "checkpoints" / "last.pt")
    checkpoint = train(cfg, run_dir, resume=resume, progress=progress, video_classifier=video_classifier)
    write_json(done, {"checkpoint": str(checkpoint.relative_to(run_dir)), "train_wall_s": time.time() - started,
                      "resumed": resume})
    return checkpoint, True


# what a trained run depends on; infer and eval are read at detection time, from the current config
TRAINED_BY = ("data", "model", "train", "video_classifier")
NOT_TRAINED_BY = {"train.device", "train.threads", "data.feature_cache"}  # how, not what, it trains


def _differing_keys(stored: dict, wanted: dict, prefix: str = "") -> list[str]:
    keys = []
    for k in sorted(set(stored) | set(wanted)):
        key, a, b = f"{prefix}{k}", stored.get(k), wanted.get(k)
        if key in NOT_TRAINED_BY:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            keys += _differing_keys(a, b, f"{key}.")
        elif a != b:
            keys.append(key)
    return keys


def _check_same_settings(cfg: Config, checkpoint: Path) -> None:
    """A UserError where the run in ``checkpoint`` was trained with other settings than ``cfg``'s:
    reusing it would report the old model under the new config."""
    from dcltal.engine.checkpoint import load_checkpoint

    stored, wanted = load_checkpoint(checkpoint)["config"], cfg.to_dict()

    def trained_by(c: dict) -> dict:  # infer.stream_weights too: held_out validation writes the weights
        return {**{k: c.get(k, {}) for k in TRAINED_BY},
                "infer": {"stream_weights": c.get("infer", {}).get("stream_weights")}}

    differ = _differing_keys(trained_by(stored), trained_by(wanted))
    if differ:
        shown = ", ".join(f"{k} ({_at(stored, k)!r} there, {_at(wanted, k)!r} now)" for k in differ[:3])
        more = f" and {len(differ) - 3} more" if len(differ) > 3 else ""
        raise UserError(f"{checkpoint} was trained with other settings: {shown}{more}; use another --out for "
                        f"these settings, or remove {checkpoint.parent.parent} to train it again")


def _at(config: dict, key: str):
    for part in key.split("."):
        config = config.get(part) if isinstance(config, dict) else None
    return config


def _pick_05(tiou: list[float]) -> int:
    hits = [i for i, t in enumerate(tiou) if math.isclose(t, 0.5)]
    if not hits:
        raise UserError(f"config key eval.tiou {tiou} lacks 0.5, the threshold of the paper's tables; add it")
    return hits[0]


class SeedEvaluator:
    """Detection and evaluation of the recipes of one seed on the test split."""

    def __init__(self, cfg: Config, test, annotations, checkpoints: dict[str, Path], video_scores,
                 avoid: set[str] | None = None, source=None):
        self.cfg, self.test, self.annotations, self.avoid = cfg, test, annotations, avoid
        self.checkpoints, self.video_scores = checkpoints, video_scores
        self.source = source  # the Predictor whose video-level scores every run of the seed shares
        self.predictors: dict[str, Any] = {}  # variant -> Predictor, loaded when a recipe needs it

    def predictor(self, variant: str):
        from dcltal.engine.detection.predictor import Predictor

        if variant not in self.predictors:
            self.predictors[variant] = Predictor.from_checkpoint(self.checkpoints[variant], self.cfg.train.device)
        return self.predictors[variant]

    def evaluate(self, recipe: Recipe) -> dict[str, dict]:
        """{stream or "fusion": {"mAP": [per tIoU], "average_mAP": x}} of one recipe."""
        from dcltal.engine.detection.inference import predict_streams, results_json, video_detections
        from dcltal.eval import evaluate_results

        cfg = self.cfg
        predictor = self.predictor(recipe.cls_variant)
        if recipe.loc_variant != recipe.cls_variant:
            predictor = predictor.with_localization_from(self.predictor(recipe.loc_variant))
        infer = predictor.infer_settings(dataclasses.replace(cfg.infer, cls_feature=recipe.cls_feature,
                                                             loc_feature=recipe.loc_feature))
        predictions = list(predict_streams(predictor.models, self.test, predictor.coder, infer,
                                           extend_ratio=predictor.cfg.model.extend_ratio))
        level = self.video_scores
        if level is not None and self.source is not None and cfg.infer.stream_weights == HELD_OUT:
            level = self.source.video_scores(self.test, infer)  # fused with this run's chosen weights
        streams = list(predictor.models)
        groups = {s: [s] for s in streams}
        if len(streams) > 1:
            groups["fusion"] = streams
        out = {}
        for name, members in groups.items():
            results = results_json({v.id: video_detections(v, {s: p[s] for s in members}, infer, predictor.classes,
                                                           level) for v, p in predictions})
            ev = evaluate_results(self.annotations, results, cfg.data.test_subset, cfg.eval.tiou, cfg.eval.protocol,
                                  avoid=self.avoid)
            out[name] = {"mAP": [float(m) for m in ev["mAP"]], "average_mAP": float(ev["average_mAP"])}
        return out


def requested_tables(variants: list[str]) -> list[Table]:
    """The tables with the rows whose variants were all trained; tables left empty are dropped."""
    have = set(variants)
    tables = [dataclasses.replace(t, rows=tuple(r for r in t.rows if r[1].variants <= have)) for t in TABLES]
    return [t for t in tables if t.rows]


def run_study(cfg: Config, out: str | Path, variants: list[str], seeds: int, command: str,
              progress: bool = True) -> dict:
    """Train, detect and evaluate the study; write DIR/ablations.json and DIR/ablations.md. Returns
    the JSON object."""
    from dcltal.data.annotations import load_annotations
    from dcltal.engine.checkpoint import load_checkpoint
    from dcltal.data.videos import load_videos, read_avoid_list
    from dcltal.engine.detection.predictor import Predictor

    if cfg.model.kind != "detector":
        raise UserError("config key model.kind must be detector for dcltal ablate (the study trains detectors)")
    if seeds < 1:
        raise UserError("--seeds must be at least 1")
    if cfg.data.annotations is None:
        raise UserError("config key data.annotations is not set; the study evaluates on its test subset")
    i05 = _pick_05(cfg.eval.tiou)
    out, started = Path(out), time.time()
    annotations = load_annotations(cfg.data.annotations, cfg.data.classes)
    avoid = read_avoid_list(cfg.data.avoid_videos)
    tables = requested_tables(variants)
    recipes = list(dict.fromkeys(r for t in tables for _, r in t.rows))
    first_stream = next(iter(cfg.data.streams))
    runs: dict[str, dict[str, dict]] = {v: {} for v in variants}
    evaluations: dict[str, dict[str, dict]] = {r.key: {} for r in recipes}
    jobs = [(s, v) for s in range(seeds) for v in variants]
    bar = tqdm(jobs, desc="ablation runs", unit="run", disable=not progress, file=sys.stderr, position=0)
    checkpoints: dict[str, Path] = {}
    scores_from = None  # the run of this seed whose built-in video-level classifier every row uses
    test = None
    for s, v in bar:
        bar.set_postfix_str(f"seed {s} {v}")
        run_dir = out / "runs" / v / f"seed{s}"
        # builtin video-level scores: one classifier a seed (every run of a seed holds out the same
        # videos), trained by the seed's first run and handed to the others, whose validation reads it
        classifier = cfg.infer.video_scores == "builtin" and scores_from is None
        shared = None if classifier or scores_from is None else scores_from[2]
        checkpoint, trained = train_run(run_config(cfg, v, s), run_dir, progress, shared)
        checkpoints[v] = checkpoint
        runs[v][str(s)] = {"checkpoint": str(checkpoint), "trained_now": trained, "train_wall_s":
                           read_json(run_dir / "done.json").get("train_wall_s")}
        if classifier:
            predictor = Predictor.from_checkpoint(checkpoint, cfg.train.device)
            states = load_checkpoint(checkpoint)["video_classifier"]
            scores_from = (v, predictor, states) if states else None
        if v != variants[-1]:
            continue
        # every variant of seed s trained: detect and evaluate its recipes
        source, first = scores_from[:2] if scores_from else (
            variants[0], Predictor.from_checkpoint(checkpoints[variants[0]], cfg.train.device))
        if test is None:  # data.avoid_videos are left out of detection and of the ground truth alike
            test = list(load_videos(cfg.data, cfg.data.test_subset, classes=first.classes))
        level = first.video_scores(test, cfg.infer)  # the same for every row of the seed
        if level is not None:
            runs[source][str(s)]["video_scores_source"] = True
        evaluator = SeedEvaluator(cfg, test, annotations, checkpoints, level, avoid or None, source=first)
        evaluator.predictors[source] = first
        for variant in variants:  # Table 1's #Params: one stream's trained model, as dcltal params counts it
            model = evaluator.predictor(variant).models[first_stream]
            runs[variant][str(s)]["params"] = model.parameter_counts()["total"]
        for r in tqdm(recipes, desc=f"seed {s}: detect and evaluate", unit="row", leave=False,
                      disable=not progress, file=sys.stderr):
            evaluations[r.key][str(s)] = evaluator.evaluate(r)
        checkpoints, scores_from = {}, None
    bar.close()
    study = summarise(tables, runs, evaluations, cfg, variants, seeds, i05, first_stream)
    study.update({"command": command, "wall_s": time.time() - started, "machine": machine(cfg.train.device)})
    write_json(out / "ablations.json", study, indent=1)
    write_text(out / "ablations.md", render(study))
    return study
