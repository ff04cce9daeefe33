"""Eq. 15 reductions (per video, so a batch split across processes sums to the same loss and
gradients), completeness OHEM per video, Eq. 16 scores, and the variants' behaviour."""
from __future__ import annotations

import math

import pytest
import torch
from model_batches import edge_case_batch, random_targets

from dcltal.model.batch import PackedBatch
from dcltal.model.detector import Detector, DetectorOutput
from dcltal.data.labelling import Targets
from dcltal.model.losses import completeness_hinge

DIM, C = 10, 3


def make(variant="dnet", seed=0, regression="agnostic"):
    torch.manual_seed(seed)
    return Detector(DIM, C, variant=variant, hidden_dim=4, cls_hidden=8, loc_hidden=12, dropout=0.0,
                    regression=regression).double()


def select_videos(batch: PackedBatch, targets: Targets, videos: list[int]):
    """The sub-batch (and its targets) of some videos, repacked."""
    offsets = batch.video_offsets.tolist()
    feats, regions, pvideo, rows, start = [], [], [], [], 0
    new_offsets = [0]
    for new_v, v in enumerate(videos):
        a, b = offsets[v], offsets[v + 1]
        feats.append(batch.features[a:b])
        idx = (batch.proposal_video == v).nonzero().flatten()
        rows.append(idx)
        regions.append(batch.regions[idx] - a + start)
        pvideo.append(torch.full((idx.numel(),), new_v))
        start += b - a
        new_offsets.append(start)
    rows = torch.cat(rows)
    sub = PackedBatch(torch.cat(feats), torch.tensor(new_offsets), torch.cat(pvideo), torch.cat(regions))
    sub_t = Targets(**{k: getattr(targets, k)[rows] for k in Targets.__dataclass_fields__})
    return sub, sub_t


@pytest.mark.parametrize("regression", ["agnostic", "class_specific"])
def test_split_batches_sum_to_the_whole(regression):
    model = make(regression=regression)
    batch = edge_case_batch(DIM, seed=7, lengths=(6, 15, 2, 11))
    targets = random_targets(batch, C, seed=8)
    whole = model.losses(model(batch), targets, batch)
    g_whole = torch.autograd.grad(whole["total"], list(model.parameters()))
    parts, g_parts = [], None
    for videos in ([0, 2], [3], [1]):
        sub, sub_t = select_videos(batch, targets, videos)
        loss = model.losses(model(sub), sub_t, sub, num_videos=batch.num_videos)
        parts.append(loss)
        g = torch.autograd.grad(loss["total"], list(model.parameters()))
        g_parts = g if g_parts is None else [x + y for x, y in zip(g_parts, g)]
    for k in whole:
        torch.testing.assert_close(sum(p[k] for p in parts), whole[k])
    for x, y in zip(g_parts, g_whole):
        torch.testing.assert_close(x, y)


def test_ohem_keeps_the_hardest_incomplete_of_each_video():
    # video 0: one complete (z=2 -> loss 0), six incomplete with z = 0..5 -> losses 1..6; keep floor(6/6) = 1
    # video 1: two incomplete (z = -0.5, 3 -> 0.5, 4): keep at least 1, the hardest (4)
    z = torch.tensor([2.0, 0, 1, 2, 3, 4, 5, -0.5, 3.0])
    scores = torch.zeros(9, 2)
    scores[:, 1] = z
    video = torch.tensor([0] * 7 + [1] * 2)
    targets = Targets(labels=torch.zeros(9, dtype=torch.long), completeness=torch.tensor([1] + [0] * 8),
                      action=torch.full((9,), 2), regression=torch.zeros(9, 2), regression_mask=torch.zeros(9, dtype=torch.bool))
    per_video = completeness_hinge(scores, targets, video, 2, ohem_ratio=1 / 6)
    torch.testing.assert_close(per_video, torch.tensor([(0.0 + 6.0) / 2, 4.0]))


def test_background_and_ignored_rows_do_not_count():
    model = make()
    batch = edge_case_batch(DIM, seed=3, lengths=(9,))
    targets = random_targets(batch, C, seed=4)
    out = model(batch)
    base = model.losses(out, targets, batch)
    ignored = targets.labels < 0
    changed = DetectorOutput(out.cls_logits + 100.0 * ignored.unsqueeze(1) * torch.arange(C + 1), out.completeness,
                             out.regression, out.reconstruction)
    torch.testing.assert_close(model.losses(changed, targets, batch)["cls"], base["cls"])
    not_com = targets.completeness < 0
    changed = DetectorOutput(out.cls_logits, out.completeness + 50.0 * not_com.unsqueeze(1), out.regression,
                             out.reconstruction)
    torch.testing.assert_close(model.losses(changed, targets, batch)["com"], base["com"])


def test_scores_eq16():
    out = DetectorOutput(torch.tensor([[0.0, math.log(3.0)]]), torch.tensor([[0.5]]), torch.zeros(1, 2), torch.zeros(1))
    torch.testing.assert_close(Detector.scores(out), torch.tensor([[0.75 * math.exp(0.5)]]))


def test_random_variant_replaces_zeros_with_noise():
    dnet, rnd = make("dnet"), make("random")
    rnd.load_state_dict(dnet.state_dict())
    x = torch.randn(40, DIM, dtype=torch.float64).abs()
    a = dnet.snippet_features(x)
    torch.manual_seed(1)
    b = rnd.snippet_features(x)
    torch.manual_seed(1)
    b2 = rnd.snippet_features(x)
    torch.testing.assert_close(b["cls"], b2["cls"])  # the global RNG drives the noise
    assert not torch.allclose(a["cls"], b["cls"]) and not torch.allclose(a["loc"], b["loc"])
    torch.testing.assert_close(a["reconstruction"], b["reconstruction"])  # Eq. 2 has no zeros to replace


def test_baseline_and_mlp1_share_features_and_have_no_reconstruction():
    x = torch.randn(7, DIM, dtype=torch.float64)
    baseline = make("baseline")
    baseline.set_input_scale(torch.full((DIM,), 2.0))
    base = baseline.snippet_features(x)  # the original features, scaled by model.input_norm's factors
    assert base["cls"] is base["original"] is base["loc"] and "reconstruction" not in base
    assert torch.equal(base["original"], 2 * x)
    mlp1 = make("mlp1").snippet_features(x)
    assert torch.equal(mlp1["cls"], mlp1["loc"])
    mlp2 = make("mlp2").snippet_features(x)
    assert not torch.allclose(mlp2["cls"], mlp2["loc"])
    batch = edge_case_batch(DIM, seed=1, lengths=(5,))
    assert make("mlp2")(batch).reconstruction.abs().sum() == 0


def test_no_proposals():
    model = make()
    batch = PackedBatch(torch.randn(5, DIM, dtype=torch.float64), torch.tensor([0, 5]),
                        torch.zeros(0, dtype=torch.long), torch.zeros(0, 3, 2, dtype=torch.long))
    out = model(batch)
    assert out.cls_logits.shape == (0, C + 1) and out.regression.shape == (0, 2)
