"""The built-in video-level classifier: pooling against a loop, state round trip, and that it learns."""
from __future__ import annotations

import numpy as np
import torch

from dcltal.engine.detection.video_classifier import (
    load_video_classifiers,
    train_video_classifier,
    video_level_scores,
)
from dcltal.model.video_classifier import VideoClassifier

C, D = 4, 16


def _videos(n, seed):
    """Videos of background noise where each present class lights up its own feature direction
    in a short stretch of snippets (so mean pooling would wash it out)."""
    rng = np.random.default_rng(seed)
    directions = np.eye(C, D) * 3.0
    features, labels = [], []
    for _ in range(n):
        t = int(rng.integers(40, 80))
        x = rng.normal(size=(t, D)).astype(np.float32)
        present = rng.choice(C, size=int(rng.integers(1, 3)), replace=False)
        for c in present:
            s = int(rng.integers(0, t - 6))
            x[s : s + 6] += directions[c]
        features.append({"rgb": x, "flow": x[:, ::-1].copy()})
        labels.append(present)
    return features, labels


def test_topk_pooling_matches_a_loop():
    torch.manual_seed(0)
    model = VideoClassifier(D, C).eval()
    x = torch.randn(37, D)
    logits = model.snippet(x)  # [T, C]
    k = 37 // 8
    want = torch.stack([torch.sort(logits[:, c], descending=True).values[:k].mean() for c in range(C)])
    torch.testing.assert_close(model(x), want)


def test_learns_which_classes_a_video_holds_and_round_trips():
    features, labels = _videos(60, seed=0)
    states = train_video_classifier(features, labels, C, progress=False)
    assert set(states) == {"rgb", "flow"}
    classifiers = load_video_classifiers(states)
    test_features, test_labels = _videos(30, seed=1)
    hits = 0
    for f, lab in zip(test_features, test_labels):
        scores = video_level_scores(classifiers, f, {"rgb": 5.0, "flow": 6.0})
        assert scores.shape == (C,) and np.all((scores >= 0) & (scores <= 1))
        hits += int(np.argmax(scores) in set(lab.tolist()))
    assert hits / len(test_labels) > 0.8  # chance is about 0.4
    # a rebuilt classifier gives the same scores as the trained state
    again = load_video_classifiers({"rgb": states["rgb"]})
    np.testing.assert_allclose(
        video_level_scores(again, test_features[0], {"rgb": 1.0}),
        video_level_scores({"rgb": classifiers["rgb"]}, test_features[0], {"rgb": 1.0}),
    )


def test_packed_videos_give_each_video_its_own_logits():
    torch.manual_seed(0)
    model = VideoClassifier(D, C).eval()
    videos = [torch.randn(t, D) for t in (9, 30, 17)]
    packed = model(torch.cat(videos), [9, 30, 17])
    torch.testing.assert_close(packed, torch.stack([model(v) for v in videos]))


def test_input_is_scaled_by_the_training_rms_so_a_stream_scale_changes_nothing():
    features, labels = _videos(12, seed=5)
    states = train_video_classifier(features, labels, C, epochs=3, progress=False)
    both = np.concatenate([f["rgb"] for f in features]).astype(np.float64)
    np.testing.assert_allclose(states["rgb"]["input_scale"].numpy(), 1 / np.sqrt((both ** 2).mean(0)), rtol=1e-5)
    scaled = [{s: x * 40.0 for s, x in f.items()} for f in features]  # e.g. Flow's larger magnitudes
    states40 = train_video_classifier(scaled, labels, C, epochs=3, progress=False)
    a, b = load_video_classifiers(states), load_video_classifiers(states40)
    w = {"rgb": 1.0, "flow": 1.0}
    np.testing.assert_allclose(video_level_scores(a, features[0], w), video_level_scores(b, scaled[0], w), rtol=1e-4,
                               atol=1e-5)
    old = {k: v for k, v in states["rgb"].items() if k != "input_scale"}  # saved before the scale existed
    assert torch.equal(VideoClassifier.from_state_dict(old).input_scale, torch.ones(D))


def test_softmax_scores_and_old_sigmoid_classifiers():
    features, labels = _videos(12, seed=7)
    states = train_video_classifier(features, labels, C, epochs=2, progress=False)
    assert bool(states["rgb"]["exclusive"])
    scores = video_level_scores(load_video_classifiers(states), features[0], {"rgb": 1.0, "flow": 1.0})
    assert abs(scores.sum() - 1.0) < 1e-5  # one distribution over the classes
    old = {k: v for k, v in states["rgb"].items() if k not in ("exclusive", "input_scale")}  # saved with sigmoids
    model = VideoClassifier.from_state_dict(old).eval()
    logits = model(torch.as_tensor(features[0]["rgb"]))
    torch.testing.assert_close(model.probabilities(logits), torch.sigmoid(logits))
    targets = torch.tensor([[1.0, 0.0, 1.0, 0.0]])
    expected = -(0.5 * logits.log_softmax(-1)[0] + 0.5 * logits.log_softmax(-1)[2])
    torch.testing.assert_close(VideoClassifier(D, C).loss(logits[None], targets), expected)


def test_config_section_gives_todays_defaults():
    """The video_classifier section's defaults are train_video_classifier's own (numbers unchanged)."""
    import inspect

    from dcltal.config import Config
    from dcltal.engine.detection.video_classifier import settings

    defaults = {k: p.default for k, p in inspect.signature(train_video_classifier).parameters.items()}
    assert settings(Config()) == {k: defaults[k] for k in settings(Config())}
