"""The results table as a pandas frame: one row per baseline and per variant, mean/std/n over
seeds, the difference to the reference (BM) and to the parent variant, the best per column."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ablate.errors import StudyError
from ablate.report.baselines import Baseline
from ablate.report.runs import VariantRow
from ablate.study.table import variant_switches
from model.config import RunConfig
from model.metrics import metric_names, metrics

# The main table shows every registered metric (a plugin's or a test's too) except one that
# equals another by definition: MAE is the mean absolute count error, which is GAME0 (one
# cell per image), so its column would repeat GAME0's.
SAME_AS = {"mae": "game0"}
# The switch matrix is ``variant_switches``'s; the report adds only its column headers.
SWITCHES = tuple(variant_switches(RunConfig()))
SWITCH_HEADERS = {"shared_backbone": "shared", "stn": "STN", "aligner": "offset",
                  "fusion": "fusion", "local_count": "local count", "domain_head": "GRL"}
DECIMALS = 2  # what the table prints; "best" is judged on printed values so ties bold alike


def table_metrics() -> list[str]:
    """The metrics of the main table, in registration order (see SAME_AS)."""
    return [name for name in metric_names() if name not in SAME_AS]


def header(name: str) -> str:
    """The column header a metric registered with (``GAME0``), else its name."""
    return next((m.header for m in metrics() if m.name == name), name)


def build_table(baselines: list[Baseline], rows: list[VariantRow], split: str,
                reference: str, names: list[str]) -> pd.DataFrame:
    """Index: row key. Columns: label, kind (baseline, variant, tuned), parent, n, source,
    ``sw_<switch>``, and per metric of ``names`` ``<m>_mean``, ``_std``, ``_d_ref``,
    ``_d_parent``, ``_beats_ref``, ``_best``. Lower is better for every metric; a value a
    baseline does not publish is NaN (printed as a dash)."""
    records = [_baseline_record(b, names) for b in baselines]
    records += [_variant_record(row, split, names) for row in rows]
    frame = pd.DataFrame.from_records(records).set_index("key")
    clash = frame.index[frame.index.duplicated()].unique().tolist()
    if clash:
        raise StudyError(f"variant name(s) {', '.join(clash)} clash with a baseline row; "
                          "leave that baseline out with --baselines")
    is_variant = frame["kind"] != "baseline"
    parent = frame["parent"].where(frame["parent"].isin(frame.index))
    for m in names:
        mean = frame[f"{m}_mean"].astype(np.float64)
        ref = frame.at[reference, f"{m}_mean"]
        parent_mean = mean.reindex(parent).to_numpy(dtype=np.float64)
        frame[f"{m}_d_ref"] = (mean - ref).where(is_variant)
        frame[f"{m}_d_parent"] = (mean - parent_mean).where(is_variant)
        frame[f"{m}_beats_ref"] = is_variant & (mean < ref)
        shown = mean.round(DECIMALS)
        frame[f"{m}_best"] = shown.notna() & (shown == shown.min())
    return frame


def _baseline_record(b: Baseline, names: list[str]) -> dict:
    record = {"key": b.key, "label": b.name, "kind": "baseline", "parent": None, "n": 0,
              "source": b.source, **{f"sw_{s}": None for s in SWITCHES}}
    for m in names:
        record[f"{m}_mean"], record[f"{m}_std"] = b.metrics.get(m, np.nan), np.nan
    return record


def _variant_record(row: VariantRow, split: str, names: list[str]) -> dict:
    values = pd.DataFrame([{m: run.metric(split, m) for m in names} for run in row.runs],
                          columns=names).astype(np.float64)
    # n: the seeds that produced a number (a diverged run records NaN, stored as null).
    n = int(values.notna().any(axis=1).sum())
    record = {"key": row.key, "label": row.label, "kind": "tuned" if row.tuned else "variant",
              "parent": row.parent, "n": n, "source": None,
              **{f"sw_{s}": v for s, v in switches(row).items()}}
    for m in names:
        record[f"{m}_mean"] = values[m].mean()
        record[f"{m}_std"] = values[m].std(ddof=1)  # NaN for one seed: nothing to spread
    return record


def switches(row: VariantRow) -> dict[str, str | bool | None]:
    """The switch matrix of the row's config; None where a stored config no longer parses."""
    try:
        config = RunConfig.from_dict(row.runs[-1].config)
    except (ValueError, TypeError):
        return dict.fromkeys(SWITCHES)
    return variant_switches(config)
