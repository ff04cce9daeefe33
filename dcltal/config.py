"""Configuration: dataclasses with defaults, loaded from YAML, overridden by ``--set``.

Unknown keys are errors (a typo must not become a silent default). Constructors of the modules
take plain values; this is the one place where configuration is adapted to them.
Relative paths are kept as given, so they resolve against the current working directory.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from dcltal.errors import UserError
from dcltal.io import read_text

MAX_THREADS = 1024
VARIANTS = ("dnet", "baseline", "mlp1", "mlp2", "random", "only_common", "no_common")


@dataclass
class DataConfig:
    annotations: str | None = None
    features: str | dict[str, str] | None = None  # one directory or HDF5 file, or {stream: directory or HDF5 file}
    feature_prefix: str = ""  # file names are <prefix><video_id><suffix>.<extension>
    feature_suffix: str = ""
    trust_pickle: bool = False  # read .pkl feature files (unpickling can run code)
    proposals: str | None = None
    classes: str | None = None
    train_subset: str = "Validation"
    test_subset: str = "Test"
    fps: float = 30.0
    feature_stride: int = 4
    feature_window: int = 16
    streams: dict[str, list[int]] = field(default_factory=lambda: {"rgb": [0, 1024], "flow": [1024, 2048]})
    feature_cache: bool = False  # keep loaded features in memory as float16 (DESIGN §4)
    avoid_videos: str | None = None  # a file of video ids (first word a line) left out of training and evaluation


@dataclass
class ModelConfig:
    kind: str = "detector"  # detector | proposals
    variant: str = "dnet"
    hidden_dim: int = 256  # D_h of the disentanglement net
    num_classes: int = 20
    cls_hidden: int = 1024  # hidden size of the classification MLP (Eq. 12)
    loc_hidden: int = 1536  # hidden size of the MLP shared by completeness and regression (Eq. 13-14)
    dropout: float = 0.5  # after the classification head's hidden ReLU
    # after the localization head's: 0, because the completeness hinge's OHEM keeps each video's highest
    # negative scores, and under dropout those are the noisiest: the loss then rewards a constant output
    # and the head's ReLUs die (measured on the synthetic benchmark: docs/training.md)
    loc_dropout: float = 0.0
    extend_ratio: float = 0.5  # each extended region is this fraction of the proposal's length
    regression: str = "agnostic"  # agnostic (Eq. 14: one start/end pair) | class_specific
    head_norm: str = "layer"  # layer | none: LayerNorm on the aggregated features before the heads (docs/training.md)
    input_norm: str = "rms"  # rms | none: each channel divided by its RMS over the training split (docs/training.md)


@dataclass
class TrainConfig:
    epochs: int = 10
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    # CPU threads torch uses (0: torch's default, one a core). Small models (the synthetic configs) run
    # faster on one: their operations are too small to split, and two threads wait on each other,
    # worst when other work shares the cores (docs/training.md)
    threads: int = 0
    # AdamW with warm-up, cosine decay and clipping: the lineage's SGD (lr 0.01, step decay) left heads dead or
    # unlearnt on features it was not tuned for (the accuracy zoo, docs/training.md "Defaults")
    optimizer: str = "adamw"
    lr: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 1e-4
    lr_steps: list[int] = field(default_factory=list)  # schedule: step
    lr_gamma: float = 0.1
    schedule: str = "cosine"  # cosine (to 0 at the last epoch) | step (lr_steps, lr_gamma); set before every batch
    warmup_epochs: float = 1.0  # linear warm-up from 0 over this many epochs
    clip_grad_norm: float = 1.0  # the gradients' global norm clipped to this (0: no clipping)
    ema_decay: float = 0.99  # validate, save and infer with an exponential moving average of the weights (0: off)
    videos_per_batch: int = 2  # more steps an epoch: the heads need them (docs/training.md "Defaults")
    # proposal labelling (SSN / P-GCN THUMOS14 values)
    fg_iou: float = 0.7
    incomplete_iou: float = 0.3
    incomplete_overlap: float = 0.01
    bg_iou: float = 0.01
    samples_per_video: list[int] = field(default_factory=lambda: [1, 6, 1])  # foreground : incomplete : background
    sample_scale: int = 4  # samples per video = sample_scale * sum(samples_per_video)
    incomplete_positive_overlap: float = 0.7  # incomplete proposals this much inside a ground truth train classification
    incomplete_positive_fraction: float = 0.25
    lambda_reg: float = 0.5
    lambda_com: float = 0.5
    ohem_ratio: float = 1 / 6  # completeness hinge keeps the hardest fraction of incomplete proposals, per video
    val_fraction: float = 0.2  # held-out training videos that choose best.pt by mAP
    val_every: int = 1
    amp: bool = True  # mixed precision where the device is CUDA


@dataclass
class InferConfig:
    # held_out: chosen by validation on the held-out training videos (docs/inference.md); or fixed, e.g. the paper's {rgb: 5, flow: 6}
    stream_weights: dict[str, float] | str = "held_out"
    video_scores: str | None = "builtin"  # builtin | null | a uNet_test.npy or JSON {video: {label: score}}
    video_score_classes: str | None = None  # for a uNet_test.npy: class -> UCF101 id map (CSV class_name,ucf101_id or classInd.txt); null: THUMOS14's ids
    video_top_k: int = 2
    top_k: int = 500  # (proposal, class) pairs kept per video before NMS
    nms: str = "hard"  # hard | soft
    nms_iou: float = 0.35
    soft_nms_sigma: float = 0.5
    max_detections: int = 200
    order: str = "fuse_first"  # fuse_first (paper 3.6) | nms_first (the lineage: NMS on original boundaries)
    cls_feature: str = "cls"  # Table 2 regrouping at test time: which feature the classification head reads
    loc_feature: str = "loc"  # ... and which the completeness and regression heads read
    proposal_score: str = "none"  # none | multiply: times each proposal's own score (the paper's Table 6 with BMN's scores)


@dataclass
class EvalConfig:
    protocol: str = "thumos14"  # thumos14 | activitynet
    tiou: list[float] = field(default_factory=lambda: [0.3, 0.4, 0.5, 0.6, 0.7])


@dataclass
class ProposalsConfig:
    """The built-in BMN-style proposal generator (``model.kind: proposals``; docs/proposals.md)."""

    mode: str = "window"  # window: sliding windows (long THUMOS-like videos) | rescale: each video resampled to temporal_scale
    temporal_scale: int = 128  # T: locations in a window
    snippets_per_location: float = 2.0  # window mode: snippets between two locations (1 = native resolution)
    window_overlap: float = 0.5  # window mode: fraction of a window shared with the next
    max_duration: int = 40  # D: longest proposal, in locations (rows of the confidence map)
    num_samples: int = 8  # N: points the BM layer samples a proposal with
    samples_per_bin: int = 3  # sub-points averaged in each of the N bins
    extend_ratio: float = 0.5  # the BM layer samples the proposal expanded by this fraction of its length each side
    hidden_1d: int = 64  # width of the base module and the temporal evaluation module
    hidden_3d: int = 64  # width after the BM layer's convolution over the N samples
    hidden_2d: int = 32  # width of the 2D convolutions of the confidence map
    groups: int = 4  # grouped 1D convolutions, as BMN
    boundary_width: float = 3.0  # start/end regions of a ground truth, in locations (BMN: 3)
    lambda_pem: float = 1.0  # weight of the proposal evaluation loss
    lambda_reg: float = 10.0  # weight of the regression map's loss inside it (BMN: 10)
    cls_positive: float = 0.9  # tIoU above which a map entry is a positive of the classification map
    reg_positive: float = 0.6  # tIoU above which a map entry is a positive of the regression map's sampling
    windows_per_batch: int = 16
    peak_ratio: float = 0.5  # candidate boundaries: local maxima, or probability above this fraction of the max
    pre_nms_top_k: int = 2000  # candidates per video kept for Soft-NMS
    soft_nms_sigma: float = 1.0  # Gaussian Soft-NMS decay exp(-tIoU^2 / sigma); chosen on held-out training videos (docs/proposals.md)
    max_proposals: int = 200  # proposals written per video


@dataclass
class VideoClassifierConfig:
    """The built-in video-level classifier (``infer.video_scores: builtin``; engine/detection/video_classifier.py),
    trained before the detector on its training videos. The defaults are the values it always had."""

    epochs: int = 40  # full passes over the shuffled training videos
    lr: float = 0.01  # Adam
    weight_decay: float = 1e-4
    batch_videos: int = 16  # videos a step
    max_snippets: int = 512  # snippets drawn from a longer video each time it is seen
    hidden: int = 128  # width of the snippet MLP
    dropout: float = 0.5


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    infer: InferConfig = field(default_factory=InferConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    proposals: ProposalsConfig = field(default_factory=ProposalsConfig)
    video_classifier: VideoClassifierConfig = field(default_factory=VideoClassifierConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_AT_LEAST_1 = (lambda v: v >= 1, "at least 1")
_POSITIVE = (lambda v: v > 0, "above 0")
_FRACTION = (lambda v: 0 <= v < 1, "in [0, 1)")
# numeric keys and the range each must lie in, checked when the config loads (not hours into a run)
_RANGES = {
    "data.fps": _POSITIVE, "data.feature_stride": _AT_LEAST_1, "data.feature_window": _AT_LEAST_1,
    "model.hidden_dim": _AT_LEAST_1, "model.num_classes": _AT_LEAST_1, "model.cls_hidden": _AT_LEAST_1,
    "model.loc_hidden": _AT_LEAST_1, "model.dropout": _FRACTION, "model.loc_dropout": _FRACTION,
    "model.extend_ratio": (lambda v: v >= 0, "at least 0"),
    # a seed numpy and torch both take; threads: 100000 crashed torch's thread pool (issue 16)
    "train.seed": (lambda v: 0 <= v < 2**32, "in [0, 2**32)"),
    "train.threads": (lambda v: 0 <= v <= MAX_THREADS, f"0 (torch's default) or a count up to {MAX_THREADS}"), "train.epochs": _AT_LEAST_1, "train.lr": _POSITIVE, "train.momentum": _FRACTION,
    "train.weight_decay": (lambda v: v >= 0, "at least 0"), "train.lr_gamma": _POSITIVE,
    "train.warmup_epochs": (lambda v: v >= 0, "at least 0"), "train.clip_grad_norm": (lambda v: v >= 0, "at least 0"),
    "train.ema_decay": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "train.videos_per_batch": _AT_LEAST_1, "train.sample_scale": _AT_LEAST_1, "train.val_fraction": _FRACTION,
    "train.val_every": (lambda v: v >= 0, "at least 0 (0 and 1: every epoch)"), "train.ohem_ratio": (lambda v: 0 < v <= 1, "in (0, 1]"),
    "infer.top_k": _AT_LEAST_1, "infer.max_detections": _AT_LEAST_1,
    "infer.nms_iou": (lambda v: 0 < v <= 1, "in (0, 1]"), "infer.soft_nms_sigma": _POSITIVE,
    "proposals.num_samples": _AT_LEAST_1, "proposals.samples_per_bin": _AT_LEAST_1,
    "proposals.hidden_1d": _AT_LEAST_1, "proposals.hidden_3d": _AT_LEAST_1, "proposals.hidden_2d": _AT_LEAST_1,
    "proposals.groups": _AT_LEAST_1, "proposals.windows_per_batch": _AT_LEAST_1,
    "proposals.soft_nms_sigma": _POSITIVE, "proposals.max_proposals": _AT_LEAST_1,
    "video_classifier.epochs": _AT_LEAST_1, "video_classifier.lr": _POSITIVE,
    "video_classifier.weight_decay": (lambda v: v >= 0, "at least 0"), "video_classifier.batch_videos": _AT_LEAST_1,
    "video_classifier.max_snippets": _AT_LEAST_1, "video_classifier.hidden": _AT_LEAST_1,
    "video_classifier.dropout": (lambda v: 0 <= v < 1, "in [0, 1)"),
}

_CHOICES = {
    "model.kind": ("detector", "proposals"),
    "model.variant": VARIANTS,
    "model.regression": ("agnostic", "class_specific"),
    "model.head_norm": ("none", "layer"),
    "model.input_norm": ("none", "rms"),
    "train.device": ("auto", "cpu", "cuda"),
    "train.optimizer": ("sgd", "adam", "adamw"),
    "train.schedule": ("step", "cosine"),
    "infer.nms": ("hard", "soft"),
    "infer.order": ("fuse_first", "nms_first"),
    "infer.cls_feature": ("cls", "loc"),
    "infer.loc_feature": ("cls", "loc"),
    "infer.proposal_score": ("none", "multiply"),
    "eval.protocol": ("thumos14", "activitynet"),
    "proposals.mode": ("window", "rescale"),
}


def _check_type(value: Any, hint: Any, key: str) -> Any:
    """Coerce ``value`` to the annotated type where it is lossless (int -> float), else raise."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        failures = []
        for arm in typing.get_args(hint):
            try:
                return _check_type(value, arm, key)
            except UserError as e:
                failures.append((arm, e))
        for arm, e in failures:  # a mapping or list: its own arm names what inside it is wrong
            if typing.get_origin(arm) is (dict if isinstance(value, dict) else list if isinstance(value, (list, tuple)) else None):
                raise e
        raise UserError(f"config key {key}: {value!r} is not of type {_hint_name(hint)}")
    if hint is type(None):
        if value is None:
            return None
        raise UserError(f"config key {key}: expected null")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):  # NaN passes every range check (each comparison is False)
                raise UserError(f"config key {key}: {value!r} must be a finite number")
            return float(value)
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is str:
        if isinstance(value, str):
            return value
    elif origin is list:
        if isinstance(value, (list, tuple)):
            (arm,) = typing.get_args(hint)
            return [_check_type(v, arm, f"{key}[{i}]") for i, v in enumerate(value)]
    elif origin is dict:
        if isinstance(value, dict):
            _, arm = typing.get_args(hint)
            return {str(k): _check_type(v, arm, f"{key}.{k}") for k, v in value.items()}
    raise UserError(f"config key {key}: {value!r} is not of type {_hint_name(hint)}")


def _hint_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def _build(cls: type, values: dict[str, Any], prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    for key in values:
        if key not in known:
            raise UserError(f"unknown config key {prefix}{key} (known: {', '.join(sorted(known))})")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in values:
            continue
        hint, value, key = hints[f.name], values[f.name], f"{prefix}{f.name}"
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, dict):
                raise UserError(f"config key {key}: expected a mapping of keys")
            kwargs[f.name] = _build(hint, value, f"{key}.")
        else:
            kwargs[f.name] = _check_type(value, hint, key)
    return cls(**kwargs)


def _value(cfg: Config, key: str) -> Any:
    """The value of a dotted ``section.name`` key."""
    section, name = key.split(".")
    return getattr(getattr(cfg, section), name)


def _validate(cfg: Config) -> None:
    for key, choices in _CHOICES.items():
        value = _value(cfg, key)
        if value not in choices:
            raise UserError(f"config key {key}: unknown value {value!r} (choose one of: {', '.join(choices)})")
    for key, (ok, what) in _RANGES.items():
        value = _value(cfg, key)
        if not ok(value):
            raise UserError(f"config key {key}: {value!r} must be {what}")
    if not cfg.eval.tiou or not all(0 < t <= 1 for t in cfg.eval.tiou):
        raise UserError(f"config key eval.tiou: thresholds must be in (0, 1], got {cfg.eval.tiou}")
    weights = cfg.infer.stream_weights
    if isinstance(weights, str) and weights != "held_out":
        raise UserError(f"config key infer.stream_weights: {weights!r} is neither held_out nor a mapping "
                        "stream -> weight, e.g. {rgb: 5, flow: 6}")
    for name, weight in ({} if isinstance(weights, str) else weights).items():
        if weight < 0:
            raise UserError(f"config key infer.stream_weights.{name}: {weight!r} must be at least 0")
    if not cfg.data.streams:
        raise UserError("config key data.streams: no streams; give at least one, e.g. {rgb: [0, 1024]}")
    for name, cols in cfg.data.streams.items():
        if len(cols) != 2 or not 0 <= cols[0] < cols[1]:
            raise UserError(f"config key data.streams.{name}: expected [first_column, end_column], got {cols}")
    if len(cfg.train.samples_per_video) != 3:
        raise UserError("config key train.samples_per_video: expected [foreground, incomplete, background]")
    p = cfg.proposals
    if p.temporal_scale < 2 or not 1 <= p.max_duration < p.temporal_scale:
        raise UserError("config keys proposals.temporal_scale / max_duration: need 1 <= max_duration < temporal_scale")
    if not 0 <= p.window_overlap < 1 or p.snippets_per_location <= 0:
        raise UserError("config keys proposals.window_overlap in [0, 1) and proposals.snippets_per_location > 0")


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"a.b.c=VALUE"`` -> (["a", "b", "c"], YAML value of VALUE)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise UserError(f"--set {text!r}: expected KEY=VALUE, e.g. --set train.epochs=3")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        raise UserError(f"--set {text!r}: the value is not valid YAML") from None
    return key.strip().split("."), value


def apply_overrides(values: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set each ``--set`` key in ``values``. A key inside a mapping the values do not hold yet (a
    stream's weight) starts from the mapping's default, so ``infer.stream_weights.rgb=2`` keeps flow's."""
    defaults = Config().to_dict()
    for text in overrides:
        path, value = parse_override(text)
        node, default = values, defaults
        for i, part in enumerate(path[:-1]):
            default = default.get(part) if isinstance(default, dict) else None
            child = node.get(part)
            if child is None:
                child = default if isinstance(default, str) else dict(default) if isinstance(default, dict) and i > 0 else {}
                if isinstance(child, dict):
                    node[part] = child
            if isinstance(child, str):  # a word where a mapping may stand (infer.stream_weights: held_out)
                where = ".".join(path[: i + 1])
                raise UserError(f"--set {text!r}: {where} is {child!r}, not a mapping; set it whole, "
                                f"e.g. --set '{where}={{rgb: 5, flow: 6}}'")
            if not isinstance(child, dict):
                raise UserError(f"--set {text!r}: {'.'.join(path[: i + 1])} is not a section")
            node = child
        node[path[-1]] = value
    return values


def with_overrides(cfg: Config, section: str, values: dict[str, Any]) -> Config:
    """A copy of ``cfg`` whose ``section`` has the keys of ``values`` replaced, checked as a config
    file's keys are (type, choices, range): a UserError names the first bad key."""
    current = getattr(cfg, section)
    rebuilt = _build(type(current), {**dataclasses.asdict(current), **values}, f"{section}.")
    out = dataclasses.replace(cfg, **{section: rebuilt})
    _validate(out)
    return out


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Read a YAML config (or start from the defaults), apply ``--set`` overrides, validate."""
    values: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise UserError(f"config file not found: {p} (check the path)")
        try:
            values = yaml.safe_load(read_text(p, "config file")) or {}
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            raise UserError(f"config file {p} is not valid YAML{where}") from None
        if not isinstance(values, dict):
            raise UserError(f"config file {p}: expected a mapping of sections (data, model, train, ...)")
    values = apply_overrides(values, list(overrides))
    cfg = _build(Config, values, "")
    _validate(cfg)
    return cfg


# keys a stored config may lack, with the value that gives the model it was trained with (the default
# may have changed since)
_STORED_DEFAULTS = {("model", "head_norm"): "none", ("model", "input_norm"): "none"}


def config_from_dict(values: dict[str, Any]) -> Config:
    """Rebuild a config saved with :meth:`Config.to_dict` (e.g. from a checkpoint)."""
    values = {k: dict(v) if isinstance(v, dict) else v for k, v in values.items()}
    for (section, key), value in _STORED_DEFAULTS.items():
        if isinstance(values.get(section), dict):
            values[section].setdefault(key, value)
    cfg = _build(Config, values, "")
    _validate(cfg)
    return cfg
