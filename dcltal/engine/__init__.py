"""Training and running models, split by what each part serves.

- ``engine/`` itself: the generic loop, which knows no particular model: the trainer (tasks trained
  in lock step), checkpoints and their export, the learning-rate schedule, devices, DDP, weight
  averaging and the metrics log. A *task* (see :mod:`dcltal.engine.trainer`) builds itself from the
  config and is all the loop sees of a model.
- ``engine/detection/``: the detector (the paper's method): its task, inference and fusion, the
  Predictor, the video-level classifier's training, the health check, the demo and the ablations.
- ``engine/proposals/``: the built-in proposal generator: its windows and task, and decoding.

The two products never import each other's modules except through the generic loop, so a change to
one product's training or inference has one place to go.
"""
