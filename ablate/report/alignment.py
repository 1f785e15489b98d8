"""Alignment measured at the labelled heads (synthetic data only): per variant, the mean
residual displacement after the model's STN and offset field (``align_residual_px``) next to
the displacement with no alignment (``align_baseline_px``); see
``model.engine.evaluate.head_alignment_errors``.

A run stores them with its final metrics of a split when the database keeps them; every run
also has them in its per-epoch rows (``val_align_residual_px``), so a run whose final values
are not stored is read at its selected epoch on val, and the report says which split it shows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ablate.db import Run, RunStore
from ablate.report.runs import VariantRow
from model.metrics import ALIGN_KEYS

COLUMNS = ("align_residual_px_mean", "align_residual_px_std", "align_baseline_px_mean",
           "align_split")


def run_alignment(store: RunStore, run: Run, split: str) -> tuple[dict[str, float], str]:
    """The run's (residual, baseline) of ``split`` and the split they come from; empty when
    the run has none (real data, or a run made before they were recorded)."""
    if all(key in run.metric_keys() for key in ALIGN_KEYS):
        values = {key: run.metric(split, key) for key in ALIGN_KEYS}
        if all(v is not None for v in values.values()):
            return values, split
    # The epoch the run selected on val is the checkpoint whose test metrics the report shows.
    row = next((r for r in store.epochs(run.id) if r["epoch"] == run.best_epoch), {})
    values = {key: row.get(f"val_{key}") for key in ALIGN_KEYS}
    if any(v is None for v in values.values()):
        return {}, split
    return values, "val"


def alignment_frame(store: RunStore, rows: list[VariantRow], split: str) -> pd.DataFrame:
    """Index: row key, columns COLUMNS (mean and sample std over the seeds that have values;
    ``align_split`` is the split they were measured on). Empty when no run has them."""
    records = []
    for row in rows:
        found = [run_alignment(store, run, split) for run in row.runs]
        found = [(values, where) for values, where in found if values]
        if not found:
            continue
        residual = np.array([v["align_residual_px"] for v, _ in found], dtype=np.float64)
        baseline = np.array([v["align_baseline_px"] for v, _ in found], dtype=np.float64)
        records.append({
            "key": row.key, "align_residual_px_mean": residual.mean(),
            "align_residual_px_std": residual.std(ddof=1) if len(residual) > 1 else np.nan,
            "align_baseline_px_mean": baseline.mean(),
            "align_split": "/".join(sorted({where for _, where in found})),
        })
    return pd.DataFrame.from_records(records, columns=["key", *COLUMNS]).set_index("key")
