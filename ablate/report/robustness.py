"""The report's section "Robustness to extra misalignment": what ``ablate robustness`` stored
next to each done run's checkpoint, averaged over the seeds of each row of the report.

The averaging is ``ablate.robustness.robustness_curves``'s, so the report and the library's
figure agree; this module only finds the rotations present and turns curves into table rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ablate.report.runs import VariantRow
from ablate.robustness import RESULTS, read_results, robustness_curves
from ablate.robustness.curves import LEVELS
from model.errors import CheckpointError

# {rotation: {row key: {"shift": [...], "game0": [...], ..., "n_runs": [...]}}}
Curves = dict[float, dict[str, dict[str, Any]]]


@dataclass(frozen=True)
class RobustnessRow:
    """One line of the table: a row's mean test GAME0-3 at one (rotation, shift)."""

    variant: str
    rotation: float
    shift: float
    n_runs: int  # the runs (seeds) with a result at this displacement
    games: tuple[float, ...]  # GAME0..GAME3, in LEVELS order


def robustness_by_rotation(rows: Iterable[VariantRow]) -> tuple[Curves, list[str]]:
    """Per rotation stored for any run (0 first, then ascending), each report row's curves;
    ``{}`` when no run has results. A run whose robustness.json cannot be read is left out,
    with a note naming the file, rather than stopping the whole report."""
    runs: list[dict[str, Any]] = []
    rotations: set[float] = set()
    notes = []
    for row in rows:
        for run in row.runs:
            if not run.save_dir:
                continue
            try:
                found = read_results(Path(run.save_dir) / RESULTS)
            except CheckpointError as exc:
                notes.append(f"robustness results of run {run.id} left out: {exc}")
                continue
            if found:  # keyed by the report's row, so a tuned row ("G-best") stays apart
                runs.append({"variant": row.key, "save_dir": run.save_dir})
                rotations.update(float(r["rotation"]) for r in found)
    order = sorted(rotations, key=lambda r: (r != 0, r))
    return {rotation: robustness_curves(runs, rotation) for rotation in order}, notes


def robustness_table(curves: Curves) -> list[RobustnessRow]:
    """Rows by variant (report order), then rotation (0 first), then shift (ascending)."""
    variants = list(dict.fromkeys(v for by_variant in curves.values() for v in by_variant))
    out = []
    for variant in variants:
        for rotation, by_variant in curves.items():
            curve = by_variant.get(variant)
            if curve is None:
                continue
            for i, shift in enumerate(curve["shift"]):
                out.append(RobustnessRow(variant, rotation, shift, curve["n_runs"][i],
                                         tuple(curve[level][i] for level in LEVELS)))
    return out
