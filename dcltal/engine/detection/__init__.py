"""The detector's side of the engine: its training task, the built-in video-level classifier's
training, inference and stream fusion, the Predictor behind ``dcltal.load``, the health check, the
demo and the ablation study."""
