"""dcltal: temporal action localization with disentangled classification and localization
representations (Zhu et al., AAAI 2022)."""
from __future__ import annotations

__version__ = "0.1.0"


def load(checkpoint):
    """Load a trained checkpoint for inference from Python: ``dcltal.load(CKPT).predict(...)``."""
    from dcltal.engine.detection.predictor import Predictor

    return Predictor.from_checkpoint(checkpoint)
