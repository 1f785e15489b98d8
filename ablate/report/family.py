"""Multiple comparisons: a report shows many recipe-level tests (every comparison at every
GAME level), and some of them come out below 0.05 by chance alone. The family is every
distinct recipe-level test the report shows; its p-values are adjusted together, by Holm
(family-wise error, the default) or Benjamini-Hochberg (false discovery rate), and a
comparison is "significant" only where its adjusted p is below 0.05."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

CORRECTIONS = {"holm": "Holm", "bh": "Benjamini-Hochberg"}
# A significance frame's columns that name one test: a comparison shown twice (B's parent
# is also the first variant) is one member of the family, not two.
_KEY = ["condition", "row", "against_key", "metric"]


def adjust(p_values: np.ndarray, method: str = "holm") -> np.ndarray:
    """Adjusted p-values, in the input order; NaN (no test) stays NaN and is not counted in
    the family. Holm: the k-th smallest of m is multiplied by m - k + 1, then made
    non-decreasing and capped at 1; BH: ``scipy.stats.false_discovery_control``."""
    if method not in CORRECTIONS:
        raise ValueError(f"correction {method!r} is not one of {', '.join(CORRECTIONS)}")
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    tested = np.isfinite(p)
    if not tested.any():
        return out
    if method == "bh":
        out[tested] = stats.false_discovery_control(p[tested], method="bh")
        return out
    values = p[tested]
    order = np.argsort(values, kind="stable")
    m = len(values)
    stepped = np.maximum.accumulate(values[order] * (m - np.arange(m)))
    held = np.empty(m)
    held[order] = np.minimum(stepped, 1.0)
    out[tested] = held
    return out


def adjust_family(frames: dict[str, pd.DataFrame], method: str = "holm",
                  extra: np.ndarray | None = None) -> tuple[int, np.ndarray]:
    """Fill ``recipe_p_adjusted`` of every significance frame (by condition, "" for none) from
    one correction over all of them and the ``extra`` p-values (tests shown elsewhere: the
    differences between conditions); returns the family's size and extra's adjusted p."""
    extra = np.asarray([] if extra is None else extra, dtype=np.float64)
    both = pd.concat([f.assign(condition=c) for c, f in frames.items()], ignore_index=True)
    tests = both.dropna(subset=["recipe_p_value"]).drop_duplicates(_KEY)
    adjusted = adjust(np.concatenate([tests["recipe_p_value"].to_numpy(np.float64), extra]),
                      method)
    lookup = pd.Series(adjusted[:len(tests)], index=pd.MultiIndex.from_frame(tests[_KEY]))
    for condition, frame in frames.items():
        keys = pd.MultiIndex.from_frame(frame.assign(condition=condition)[_KEY])
        frame["recipe_p_adjusted"] = lookup.reindex(keys).to_numpy(dtype=np.float64)
    return len(tests) + int(np.isfinite(extra).sum()), adjusted[len(tests):]
