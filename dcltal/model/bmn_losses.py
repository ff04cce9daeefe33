"""Losses of the BMN proposal network (BMN §3.5, "Training of BMN").

``L = L_TEM + lambda_pem * L_PEM`` (BMN's weight decay term is the optimiser's), with

- ``L_TEM = L_bl(P_S, G_S) + L_bl(P_E, G_E)``: the weighted binary logistic loss ``L_bl`` on the
  starting and ending probabilities, a location being positive where its label exceeds 0.5;
- ``L_PEM = L_C(M_CC, G_C) + lambda_reg * L_R(M_CR, G_C)``: ``L_C`` is ``L_bl`` on the
  classification map (positive where ``G_C`` exceeds ``cls_positive``), ``L_R`` the squared error on
  the regression map over a sample of map entries balanced between positives (``G_C`` above
  ``reg_positive``) and randomly drawn negatives, about one to one. BMN weighs ``L_R`` by 10.

``L_bl`` (BSN / BMN): with ``b_j`` the positive mask over the ``l`` entries considered, ``l+`` of them
positive, ``alpha+ = l / l+`` and ``alpha- = l / (l - l+)``:
``L_bl = -1/l * sum_j (alpha+ * b_j * log p_j + alpha- * (1 - b_j) * log(1 - p_j))``, so each
side carries half the weight whatever the imbalance.
"""
from __future__ import annotations

import torch

from dcltal.model.bmn import BMNOutput

_EPS = 1e-6


def weighted_binary_logistic(prob: torch.Tensor, positive: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``L_bl`` of probabilities ``prob`` against the bool ``positive`` mask, over entries where
    ``mask`` (all where None). A side with no entries adds nothing."""
    if prob.dtype in (torch.float16, torch.bfloat16):
        prob = prob.float()  # logs in single precision under CUDA autocast
    if mask is None:
        mask = torch.ones_like(positive)
    mask = mask.to(prob.dtype)
    pos = positive.to(prob.dtype) * mask
    neg = mask - pos
    count, n_pos, n_neg = mask.sum(), pos.sum(), neg.sum()
    if count == 0:
        return prob.sum() * 0
    alpha_pos = count / n_pos.clamp(min=1)
    alpha_neg = count / n_neg.clamp(min=1)
    log_p = torch.log(prob.clamp(min=_EPS))
    log_q = torch.log((1 - prob).clamp(min=_EPS))
    return -(alpha_pos * pos * log_p + alpha_neg * neg * log_q).sum() / count


def balanced_regression(pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, positive: float,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """``L_R``: mean squared error of ``pred`` over all valid entries with ``target > positive`` and as
    many valid others drawn at random (all of them where there are fewer)."""
    pos = valid & (target > positive)
    neg = valid & ~pos
    n_pos, n_neg = int(pos.sum()), int(neg.sum())
    if n_neg > n_pos:
        draw = torch.rand(neg.shape, generator=generator, device="cpu").to(neg.device)
        # keep the n_pos (at least one) negatives with the smallest draws
        k = max(n_pos, 1)
        threshold = torch.kthvalue(draw[neg], k).values
        neg = neg & (draw <= threshold)
    chosen = pos | neg
    if not chosen.any():
        return pred.sum() * 0
    return (pred[chosen] - target[chosen]).to(torch.promote_types(pred.dtype, torch.float32)).square().mean()


def bmn_losses(out: BMNOutput, start: torch.Tensor, end: torch.Tensor, iou_map: torch.Tensor, valid: torch.Tensor,
               lambda_pem: float = 1.0, lambda_reg: float = 10.0, cls_positive: float = 0.9,
               reg_positive: float = 0.6, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """Losses of a batch of windows: targets ``start``/``end`` [B, T], ``iou_map`` [B, D, T] (G_C), and
    ``valid`` [D, T] or [B, D, T] (entries whose proposal lies inside the window).
    Returns ``tem``, ``pem_cls``, ``pem_reg`` and ``total``."""
    tem = weighted_binary_logistic(out.start, start > 0.5) + weighted_binary_logistic(out.end, end > 0.5)
    valid = valid.expand_as(iou_map)
    pem_cls = weighted_binary_logistic(out.cls_map, iou_map > cls_positive, valid)
    pem_reg = balanced_regression(out.reg_map, iou_map, valid, reg_positive, generator)
    total = tem + lambda_pem * (pem_cls + lambda_reg * pem_reg)
    return {"tem": tem, "pem_cls": pem_cls, "pem_reg": pem_reg, "total": total}
