"""Engine: training, inference, stream fusion, checkpoints, distributed helpers."""
