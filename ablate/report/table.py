"""The results table as a pandas frame: one row per baseline and per variant, mean/std/n over
seeds, the difference to the reference (BM) and to the parent variant, the best per column."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ablate.errors import AblateError
from ablate.report.baselines import Baseline
from ablate.report.runs import VariantRow
from ablate.study import variant_switches
from model.config import RunConfig

METRICS = ("game0", "game1", "game2", "game3", "rmse")
HEADERS = {"game0": "GAME0", "game1": "GAME1", "game2": "GAME2", "game3": "GAME3",
           "rmse": "RMSE"}
SWITCHES = ("shared_backbone", "stn", "offset_align", "fusion", "local_count", "grl")
SWITCH_HEADERS = {"shared_backbone": "shared", "stn": "STN", "offset_align": "offset",
                  "fusion": "fusion", "local_count": "local count", "grl": "GRL"}
DECIMALS = 2  # what the table prints; "best" is judged on printed values so ties bold alike


def build_table(baselines: list[Baseline], rows: list[VariantRow], split: str,
                reference: str) -> pd.DataFrame:
    """Index: row key. Columns: label, kind (baseline, variant, tuned), parent, n, source,
    ``sw_<switch>``, and per metric ``<m>_mean``, ``_std``, ``_d_ref``, ``_d_parent``,
    ``_beats_ref``, ``_best``. Lower is better for every metric."""
    records = [_baseline_record(b) for b in baselines]
    records += [_variant_record(row, split) for row in rows]
    frame = pd.DataFrame.from_records(records).set_index("key")
    clash = frame.index[frame.index.duplicated()].unique().tolist()
    if clash:
        raise AblateError(f"variant name(s) {', '.join(clash)} clash with a baseline row; "
                          "leave that baseline out with --baselines")
    is_variant = frame["kind"] != "baseline"
    parent = frame["parent"].where(frame["parent"].isin(frame.index))
    for m in METRICS:
        mean = frame[f"{m}_mean"]
        ref = frame.at[reference, f"{m}_mean"]
        parent_mean = mean.reindex(parent).to_numpy(dtype=np.float64)
        frame[f"{m}_d_ref"] = (mean - ref).where(is_variant)
        frame[f"{m}_d_parent"] = (mean - parent_mean).where(is_variant)
        frame[f"{m}_beats_ref"] = is_variant & (mean < ref)
        shown = mean.round(DECIMALS)
        frame[f"{m}_best"] = shown.notna() & (shown == shown.min())
    return frame


def _baseline_record(b: Baseline) -> dict:
    record = {"key": b.key, "label": b.name, "kind": "baseline", "parent": None, "n": 0,
              "source": b.source, **{f"sw_{s}": None for s in SWITCHES}}
    for m in METRICS:
        record[f"{m}_mean"], record[f"{m}_std"] = b.metrics[m], np.nan
    return record


def _variant_record(row: VariantRow, split: str) -> dict:
    values = pd.DataFrame([run.metrics(split) for run in row.runs],
                          columns=list(METRICS)).astype(np.float64)
    record = {"key": row.key, "label": row.label, "kind": "tuned" if row.tuned else "variant",
              "parent": row.parent, "n": int(values["game0"].count()), "source": None,
              **{f"sw_{s}": v for s, v in switches(row).items()}}
    for m in METRICS:
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
