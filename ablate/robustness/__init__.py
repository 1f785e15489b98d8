"""``ablate robustness``: what an extra displacement of the moving image costs a trained run.

warp.py moves the moving image by a fixed shift and rotation; runner.py re-evaluates done
runs' best checkpoints on test under each displacement and stores the rows next to the
checkpoint; curves.py turns stored rows into per-variant curves and a figure for the report.
"""

import importlib
from typing import Any

from ablate.robustness.curves import plot_robustness, robustness_curves
from ablate.robustness.results import RESULTS, read_results

# Re-evaluating needs torch; reading stored results (the report) does not: loaded on first use.
_LAZY = {"parse_values": "runner", "run_robustness": "runner", "displace": "warp",
         "displacement_theta": "warp"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"ablate.robustness.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'ablate.robustness' has no attribute {name!r}")


__all__ = ["RESULTS", "displace", "displacement_theta", "parse_values", "plot_robustness",
           "read_results", "robustness_curves", "run_robustness"]
