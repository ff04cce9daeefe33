"""Plots: attention curves as in the paper's Fig. 1 and 3, detection timelines, training curves.

matplotlib comes with the ``dcltal[viz]`` extra; without it, importing this package is one UserError.
"""
from dcltal.extras import require

require("viz", "plotting (dcltal visualize, dcltal demo, dcltal.viz)")
