"""The report's hook: robustness curves from the stored results, and their figure.

``robustness_curves`` reads each run's ``<save_dir>/robustness.json`` (written by
``ablate robustness``) and averages the runs of a variant; ``plot_robustness`` draws GAME0-3
against the shift, one line per variant.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from ablate.robustness.results import RESULTS, read_results

LEVELS = ("game0", "game1", "game2", "game3")


def _field(run: Any, name: str) -> Any:
    """``run[name]`` for a ``runs list --json`` dict, ``run.name`` for a Run row."""
    return run[name] if isinstance(run, Mapping) else getattr(run, name)


def robustness_curves(runs: Iterable[Any], rotation: float = 0.0) -> dict[str, dict[str, Any]]:
    """``{variant: {"shift": [...], "game0": [...], ..., "n_runs": [...]}}``: at each shift
    (ascending) the mean over the variant's runs that have a result at that shift and
    ``rotation``; runs without stored results are left out, variants in first-seen order."""
    sums: dict[str, dict[float, list[list[float]]]] = defaultdict(lambda: defaultdict(list))
    for run in runs:
        save_dir = _field(run, "save_dir")
        if not save_dir:
            continue
        for row in read_results(Path(save_dir) / RESULTS):
            if row["rotation"] == rotation:
                sums[_field(run, "variant")][row["shift"]].append([row[k] for k in LEVELS])
    curves = {}
    for variant, by_shift in sums.items():
        shifts = sorted(by_shift)
        means = [[sum(col) / len(col) for col in zip(*by_shift[s], strict=True)] for s in shifts]
        curves[variant] = {"shift": shifts, "n_runs": [len(by_shift[s]) for s in shifts],
                           **{k: [m[i] for m in means] for i, k in enumerate(LEVELS)}}
    return curves


def plot_robustness(curves: Mapping[str, Mapping[str, Any]], title: str | None = None) -> Figure:
    """GAME0-3 against the extra shift of the moving image, one panel per level and one line
    per variant (the mean over its runs), from ``robustness_curves``."""
    fig = Figure(figsize=(12, 3.2), layout="constrained")
    axes = fig.subplots(1, len(LEVELS), sharex=True)
    for ax, level in zip(axes, LEVELS, strict=True):
        for variant, curve in curves.items():
            ax.plot(curve["shift"], curve[level], marker="o", label=variant)
        ax.set_title(level.upper())
        ax.set_xlabel("shift (px)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("error (mean over runs)")
    fig.supxlabel("extra shift of the moving image, in pixels along x and along y",
                  fontsize="small")
    if curves:
        axes[-1].legend(fontsize="small")
    if title:
        fig.suptitle(title.replace("$", r"\$"))
    return fig
