"""The difference between a study's conditions, variant by variant: each variant's GAME in a
condition minus in the reference condition (the first one declared: registered, against
misaligned), and how much of the first variant's cost each variant recovers.

The tests pair the same seed across the two conditions: between recipes (``recipe``, the
headline) over the per-seed means, and between these trained models (``tests``) over the
(seed, image) pairs. When only the data's displacement differs (``synth_shift``), the
synthetic test scenes are the same, so the paired test isolates the condition. Conditions on
different datasets share no images: the difference of the means is shown without a test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ablate.db import RunStore
from ablate.report.recipe import RecipeTest, diff_matrices, recipe_test
from ablate.report.stats import GAME_METRICS, PairedTest, finite_test, seed_images

if TYPE_CHECKING:
    from ablate.report.build import Report, ReportOptions


@dataclass
class CrossRow:
    """One variant's change from the reference condition to ``condition``."""

    condition: str
    reference: str
    key: str  # the variant
    label: str
    diff: dict[str, float]  # per GAME level: mean over (seed, image) pairs, or of the means
    tests: dict[str, PairedTest | str] = field(default_factory=dict)  # or why there is none
    # Per GAME level the recipe-level test over the seeds (ablate.report.recipe), or why none.
    recipe: dict[str, RecipeTest | str] = field(default_factory=dict)
    recovered: float | None = None  # share of the first variant's cost (sig metric) recovered


def paired_across(other: pd.DataFrame, reference: pd.DataFrame
                  ) -> dict[str, PairedTest | str]:
    """other - reference over the (seed, image) pairs both hold with the same true count."""
    if other.empty or reference.empty:
        return dict.fromkeys(GAME_METRICS, "no per-image results")
    common = other.index.intersection(reference.index)
    a, b = other.loc[common], reference.loc[common]
    same = np.isclose(a["true_count"], b["true_count"])
    if not same.any():
        return dict.fromkeys(GAME_METRICS, "no common test images (another dataset)")
    out: dict[str, PairedTest | str] = {}
    for metric in GAME_METRICS:
        out[metric] = finite_test((a[metric] - b[metric]).to_numpy(dtype=np.float64)[same],
                                  metric)
    return out


def cross_conditions(store: RunStore, parts: list[tuple[str, Report]],
                     options: ReportOptions) -> list[CrossRow]:
    """Every variant present in the reference condition (``parts[0]``) and another one."""
    if len(parts) < 2:
        return []
    reference, ref_report = parts[0]
    ref_rows = {row.key: row for row in ref_report.rows if not row.tuned}
    out = []
    for condition, report in parts[1:]:
        rows = [row for row in report.rows if not row.tuned and row.key in ref_rows]
        found = []
        for row in rows:
            now = seed_images(store, row.runs, options.split)
            before = seed_images(store, ref_rows[row.key].runs, options.split)
            tests = paired_across(now, before)
            diff = {m: t.mean_diff if isinstance(t, PairedTest) else
                    _mean(report, row.key, m) - _mean(ref_report, row.key, m)
                    for m, t in tests.items()}
            found.append(CrossRow(condition, reference, row.key, row.label, diff, tests,
                                  _recipe(now, before, options)))
        _recovered(found, report, options.sig_metric)
        out += found
    return out


def _recipe(now: pd.DataFrame, before: pd.DataFrame, options: ReportOptions
            ) -> dict[str, RecipeTest | str]:
    """Per GAME level the recipe-level test of now - before, paired by seed."""
    diffs = diff_matrices(now, before)
    if isinstance(diffs, str):
        return dict.fromkeys(GAME_METRICS, diffs)
    return {m: recipe_test(diffs[m], options.effect * float(before[m].mean()),
                           options.recipe_test) for m in GAME_METRICS}


def _mean(report: Report, key: str, metric: str) -> float:
    return float(report.table.at[key, f"{metric}_mean"])


def _recovered(rows: list[CrossRow], report: Report, metric: str) -> None:
    """(A's error - V's error) in the condition, over A's cost (A's change across the
    conditions): 1 = V undoes the whole cost, 0 = no better than A."""
    first = next((row for row in rows if row.key == report.first), None)
    if first is None:
        return
    cost = first.diff.get(metric, math.nan)
    if not math.isfinite(cost) or cost == 0:
        return
    for row in rows:
        gain = _mean(report, first.key, metric) - _mean(report, row.key, metric)
        row.recovered = gain / cost
