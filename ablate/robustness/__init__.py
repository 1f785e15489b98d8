"""``ablate robustness``: what an extra displacement of the moving image costs a trained run.

warp.py moves the moving image by a fixed shift and rotation; runner.py re-evaluates done
runs' best checkpoints on test under each displacement and stores the rows next to the
checkpoint; curves.py turns stored rows into per-variant curves and a figure for the report.
"""

from ablate.robustness.curves import plot_robustness, robustness_curves
from ablate.robustness.runner import RESULTS, parse_values, read_results, run_robustness
from ablate.robustness.warp import displace, displacement_theta

__all__ = ["RESULTS", "displace", "displacement_theta", "parse_values", "plot_robustness",
           "read_results", "robustness_curves", "run_robustness"]
