"""The slow, obvious per-proposal model: a loop over proposals, each region sliced out of the
features and run through the paper's equations one by one, with the SAME nn.Linear weights as a
``dcltal.model.detector.Detector``. The fast model must agree with it (outputs and gradients)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dcltal.model.detector import DetectorOutput
from dcltal.model.disentangle import Disentangler, SharedMLP, TwoMLPs


def cosine(u, v, eps=1e-8):
    return (u * v).sum(-1) / (u.norm(dim=-1).clamp_min(eps) * v.norm(dim=-1).clamp_min(eps))


def disentangle(module, y):
    """Eq. 1-5 on one region's snippets Y [K, D] -> (F_cls, F_loc, L_rec or None)."""
    if isinstance(module, SharedMLP):
        f = module.mlp(y)
        return f, f, None
    if isinstance(module, TwoMLPs):
        return module.mlp_cls(y), module.mlp_loc(y), None
    if not isinstance(module, Disentangler):  # baseline: original features
        return y, y, None
    h_cls = module.enc_cls(y)  # Eq. 1
    h_loc = module.enc_loc(y)
    zero = torch.zeros_like(h_cls)
    if module.mode == "no_common":
        y_hat = F.relu(module.decoder(torch.cat([h_cls, h_loc], -1)))  # Eq. 2 without a common part
        f_cls = F.relu(module.decoder(torch.cat([h_cls, zero], -1)))
        f_loc = F.relu(module.decoder(torch.cat([zero, h_loc], -1)))
    else:
        h_com = module.enc_com(y)
        y_hat = F.relu(module.decoder(torch.cat([h_cls, h_com, h_loc], -1)))  # Eq. 2
        if module.mode == "only_common":
            f_cls = f_loc = F.relu(module.decoder(torch.cat([zero, h_com, zero], -1)))
        else:
            f_cls = F.relu(module.decoder(torch.cat([h_cls, h_com, zero], -1)))  # Eq. 4
            f_loc = F.relu(module.decoder(torch.cat([zero, h_com, h_loc], -1)))  # Eq. 5
    rec = F.mse_loss(y_hat, y) + (1 - cosine(y, y_hat)).mean()  # Eq. 3
    return f_cls, f_loc, rec


def aggregate(agg, feats, f_g):
    """Eq. 6-11 on one region's features F [K, D] and the video's max-pooled features f_g [D]."""
    idx = feats.argmax(0)  # first maximum, as the fast sparse table
    f_o = feats.gather(0, idx.unsqueeze(0)).squeeze(0)  # Eq. 6
    a = F.relu(cosine(f_o.unsqueeze(0), feats))  # Eq. 7, [K]
    a = a / a.sum().clamp_min(1e-6)  # ContextLoc's normalisation
    f_a = agg.proposal(f_o) + agg.attended(feats.T @ a)  # Eq. 8
    f_gl = agg.video(f_g) + agg.local(feats).mean(0)  # Eq. 10
    return torch.cat([f_a, f_gl])  # Eq. 11


def head_norm(norm, f):
    """LayerNorm over f's D channels by its definition (model.head_norm: layer); f itself without one."""
    if isinstance(norm, nn.Identity):
        return f
    centred = f - f.mean()
    return centred / torch.sqrt(centred.pow(2).mean() + norm.eps) * norm.weight + norm.bias


def reference_forward(model, batch, cls_feature="cls", loc_feature="loc") -> DetectorOutput:
    x, offsets = batch.features * model.input_scale, batch.video_offsets.tolist()
    cls_logits, completeness, regression, recs = [], [], [], []
    for i in range(batch.regions.shape[0]):
        v = int(batch.proposal_video[i])
        video = x[offsets[v]:offsets[v + 1]]
        f_g = video.max(0).values  # Eq. 9
        region_feats = []
        rec = None
        for j in range(3):  # centre, left, right
            lo, hi = batch.regions[i, j].tolist()
            f_cls, f_loc, r = disentangle(model.disentangle, x[lo:hi])
            if j == 0:
                rec = r
            region_feats.append({"cls": f_cls, "loc": f_loc})
        f_cls = head_norm(model.cls_norm, aggregate(model.aggregate_cls, region_feats[0][cls_feature], f_g))
        f_c, f_l, f_r = (head_norm(model.loc_norm, aggregate(model.aggregate_loc, region_feats[j][loc_feature], f_g))
                         for j in range(3))
        cls_logits.append(model.cls_head(f_cls.unsqueeze(0))[0])  # Eq. 12
        z, t = model.loc_head(torch.cat([f_l, f_c, f_r]).unsqueeze(0))  # Eq. 13-14
        completeness.append(z[0])
        regression.append(t[0])
        recs.append(rec if rec is not None else x.new_zeros(()))
    return DetectorOutput(torch.stack(cls_logits), torch.stack(completeness), torch.stack(regression), torch.stack(recs))


def reference_losses(out, targets, proposal_video, num_videos, lambda_reg=0.5, lambda_com=0.5, ohem_ratio=1 / 6):
    """Eq. 15 video by video, sample by sample: per-video means, summed, divided by num_videos."""
    total = {"cls": 0.0, "reg": 0.0, "com": 0.0, "rec": 0.0}
    for v in proposal_video.unique().tolist():
        rows = (proposal_video == v).nonzero().flatten().tolist()
        ce = [F.cross_entropy(out.cls_logits[i:i + 1], targets.labels[i:i + 1]) for i in rows if targets.labels[i] >= 0]
        reg = []
        for i in rows:
            if targets.regression_mask[i]:
                pred = out.regression[i]
                if pred.dim() == 2:
                    pred = pred[targets.action[i] - 1]
                reg.append(F.smooth_l1_loss(pred, targets.regression[i], reduction="sum"))
        pos, neg = [], []
        for i in rows:
            if targets.completeness[i] < 0 or targets.action[i] <= 0:
                continue
            z = out.completeness[i, targets.action[i] - 1]
            (pos if targets.completeness[i] == 1 else neg).append(F.relu(1 - z) if targets.completeness[i] == 1 else F.relu(1 + z))
        if neg:
            keep = max(1, int(ohem_ratio * len(neg)))
            neg = sorted(neg, key=lambda t: -float(t.detach()))[:keep]
        com = pos + neg
        mean = lambda xs: torch.stack(xs).mean() if xs else 0.0  # noqa: E731
        total["cls"] = total["cls"] + mean(ce)
        total["reg"] = total["reg"] + mean(reg)
        total["com"] = total["com"] + mean(com)
        total["rec"] = total["rec"] + mean([out.reconstruction[i] for i in rows])
    total = {k: t / num_videos for k, t in total.items()}
    total["total"] = total["cls"] + lambda_reg * total["reg"] + lambda_com * total["com"] + total["rec"]
    return total
