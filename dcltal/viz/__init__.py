"""Plots: attention curves as in the paper's Fig. 1 and 3, detection timelines, training curves."""
