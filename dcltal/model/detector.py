"""One stream's detector (paper §3, Fig. 2): disentangle -> aggregate -> heads, per packed batch.

Per snippet (once for all proposals, DESIGN §3): the D-Net (or the module a variant puts in its place)
and the aggregators' per-snippet linear maps. Per region: the max, attention and mean of
`dcltal.ops.pooling.pool_regions`, prefix-sum means. The classification aggregator reads the centre
region; the localization aggregator is shared by the centre and the two extended regions (one call over 3N regions).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dcltal.model.aggregate import ContextAggregator
from dcltal.model.batch import PackedBatch
from dcltal.model.disentangle import build_disentangler
from dcltal.model.heads import ClassificationHead, LocalizationHead
from dcltal.data.labelling import Targets
from dcltal.model.losses import detector_losses
from dcltal.ops.pooling import region_mean

FEATURES = ("cls", "loc")
HEAD_NORMS = ("none", "layer")


@dataclass
class DetectorOutput:
    cls_logits: torch.Tensor  # [N, C + 1], index 0 = background (Eq. 12)
    completeness: torch.Tensor  # [N, C] (Eq. 13)
    regression: torch.Tensor  # [N, 2] agnostic (Eq. 14), or [N, C, 2] class_specific
    reconstruction: torch.Tensor | None  # [N] L_rec of each proposal (Eq. 3); zeros where the variant has no
    # decoder; None where the forward was asked for none (inference)


def video_max(x: torch.Tensor, video_offsets: torch.Tensor) -> torch.Tensor:
    """[V, D] Eq. 9: max over each video's original snippet features."""
    bounds = video_offsets.tolist()
    return torch.stack([x[a:b].amax(0) for a, b in zip(bounds[:-1], bounds[1:])])


class Detector(nn.Module):
    """``head_norm``: "layer" puts a LayerNorm on each aggregated feature (Eq. 11) before the heads
    (the lineage puts BatchNorm there; LayerNorm keeps every proposal independent of its batch, so a
    batch split across processes gives the same gradients); "none" feeds Eq. 11's f to the heads.
    ``input_scale`` (a buffer, ones until :meth:`set_input_scale`) multiplies each channel of the
    original features before anything reads them (the training split's RMS per channel, so the
    scale of a stream's features does not set the learning dynamics; non-negative I3D features stay
    non-negative, which Eq. 2's ReLU decoder needs)."""

    def __init__(self, dim: int, num_classes: int, variant: str = "dnet", hidden_dim: int = 256,
                 cls_hidden: int = 1024, loc_hidden: int = 1536, dropout: float = 0.5, loc_dropout: float = 0.0,
                 regression: str = "agnostic", head_norm: str = "layer"):
        super().__init__()
        if regression not in ("agnostic", "class_specific"):
            raise ValueError(f"unknown regression {regression!r} (agnostic or class_specific)")
        if head_norm not in HEAD_NORMS:
            raise ValueError(f"unknown head_norm {head_norm!r} (one of {HEAD_NORMS})")
        self.dim, self.num_classes, self.variant = dim, num_classes, variant
        self.register_buffer("input_scale", torch.ones(dim))
        self.disentangle = build_disentangler(variant, dim, hidden_dim)
        self.aggregate_cls = ContextAggregator(dim)
        self.aggregate_loc = ContextAggregator(dim)  # shared by the centre and both extended regions
        norm = (lambda: nn.LayerNorm(dim)) if head_norm == "layer" else nn.Identity
        self.cls_norm, self.loc_norm = norm(), norm()  # the latter shared by the three regions, as aggregate_loc
        self.cls_head = ClassificationHead(dim, cls_hidden, num_classes, dropout)
        self.loc_head = LocalizationHead(3 * dim, loc_hidden, num_classes, loc_dropout, regression == "class_specific")

    @classmethod
    def from_config(cls, model_cfg, dim: int, num_classes: int) -> "Detector":
        return cls(dim, num_classes, variant=model_cfg.variant, hidden_dim=model_cfg.hidden_dim,
                   cls_hidden=model_cfg.cls_hidden, loc_hidden=model_cfg.loc_hidden, dropout=model_cfg.dropout,
                   loc_dropout=model_cfg.loc_dropout, regression=model_cfg.regression, head_norm=model_cfg.head_norm)

    def set_input_scale(self, scale: torch.Tensor) -> None:
        """[D] the per-channel factor applied to the original features (kept in the state dict)."""
        self.input_scale.copy_(scale)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # checkpoints written before the input scale existed: ones, which is what they trained with
        state_dict.setdefault(prefix + "input_scale", torch.ones(self.dim))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def parameter_counts(self) -> dict[str, int]:
        """Parameters of each part (the keys of ``dcltal params --json``, CONTRACT §3): total, disentangle
        (whatever sits in the D-Net's place; 0 for baseline), aggregate (both aggregators) and per module."""
        count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
        parts = {name: count(getattr(self, name)) for name in
                 ("disentangle", "aggregate_cls", "aggregate_loc", "cls_norm", "loc_norm", "cls_head", "loc_head")}
        return {"total": count(self), "disentangle": parts["disentangle"],
                "aggregate": parts["aggregate_cls"] + parts["aggregate_loc"],
                "heads": parts["cls_norm"] + parts["loc_norm"] + parts["cls_head"] + parts["loc_head"], **parts}

    def snippet_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-snippet features of one video ([T, D] original features) for plots (paper Fig. 1):
        {"original", "cls", "loc"} -> [T, D], and "reconstruction" -> [T] where the variant has a decoder."""
        x = x * self.input_scale
        f_cls, f_loc, error = self.disentangle(x)
        out = {"original": x, "cls": f_cls, "loc": f_loc}
        if error is not None:
            out["reconstruction"] = error
        return out

    def forward(self, batch: PackedBatch, cls_feature: str = "cls", loc_feature: str = "loc",
                reconstruction: bool = True) -> DetectorOutput:
        """``cls_feature`` / ``loc_feature``: which disentangled feature the classification branch and
        the localization branch aggregate (Table 2 regrouping at test time; "cls" / "loc" by default).
        ``reconstruction``: whether to compute L_rec (Eq. 3; only the loss needs it)."""
        if cls_feature not in FEATURES or loc_feature not in FEATURES:
            raise ValueError(f"cls_feature / loc_feature must be one of {FEATURES}")
        x = batch.features * self.input_scale  # [S, D]
        f_cls, f_loc, error = self.disentangle(x, reconstruct=reconstruction)
        feats = {"cls": f_cls, "loc": f_loc}
        global_max = video_max(x, batch.video_offsets)  # [V, D]
        regions = batch.regions  # [N, 3, 2]: centre, left, right
        n = regions.shape[0]
        centre = regions[:, 0]
        agg_cls = self.aggregate_cls(feats[cls_feature], centre[:, 0], centre[:, 1], global_max, batch.proposal_video)
        flat = regions[:, [1, 0, 2]].reshape(3 * n, 2)  # [3N, 2]: left, centre, right of each proposal in turn
        agg_loc = self.aggregate_loc(feats[loc_feature], flat[:, 0], flat[:, 1], global_max,
                                     batch.proposal_video.repeat_interleave(3))  # [3N, D]
        completeness, regression = self.loc_head(self.loc_norm(agg_loc).view(n, 3 * self.dim))  # [f_L, f_loc, f_R]
        if not reconstruction:
            rec = None
        elif error is None:
            rec = x.new_zeros(n)
        else:
            rec = region_mean(error.unsqueeze(1), centre[:, 0], centre[:, 1]).squeeze(1)  # [N]
        return DetectorOutput(self.cls_head(self.cls_norm(agg_cls)), completeness, regression, rec)

    def losses(self, out: DetectorOutput, targets: Targets, batch: PackedBatch, lambda_reg: float = 0.5,
               lambda_com: float = 0.5, ohem_ratio: float = 1 / 6, num_videos: int | None = None) -> dict[str, torch.Tensor]:
        """Eq. 15: {cls, reg, com, rec, total}; per-video means summed and divided by ``num_videos``
        (default: this batch's count; see :mod:`dcltal.model.losses` for splitting across processes)."""
        return detector_losses(out, targets, batch.proposal_video, batch.num_videos, num_videos,
                               lambda_reg, lambda_com, ohem_ratio)

    @staticmethod
    def scores(out: DetectorOutput) -> torch.Tensor:
        """[N, C] Eq. 16: softmax(cls)[1:] * exp(completeness)."""
        return F.softmax(out.cls_logits, dim=-1)[:, 1:] * torch.exp(out.completeness)
