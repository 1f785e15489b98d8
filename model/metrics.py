"""The metrics of the project, the one list the runs database, the reports, selection and
tuning read: their names, report headers and how each reduces a split's per-image rows.

The per-image GAME numbers come from ``model.game`` (the official RGBT-CC protocol, in torch);
here only step 4 of that protocol: the set's GAME(L) is the mean over images and
RMSE = sqrt(mean((sum D - sum T) ** 2)). A plugin adds its own metric with ``@metric``.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from model.registry import lookup, names, register

GAME_LEVELS = (0, 1, 2, 3)

# Importing torch takes seconds and the runs database, the reports and study files need only the
# metric list, so the per-image GAME code lives in model.game; its names here (game_per_image is
# documented as model.metrics.game_per_image) load it on first use.
GAME_NAMES = ("check_points", "point_map", "upsample_density", "cell_sums", "level_errors",
              "game_per_image", "MetricAccumulator")


def __getattr__(name: str) -> Any:
    if name in GAME_NAMES:
        return getattr(importlib.import_module("model.game"), name)
    raise AttributeError(f"module 'model.metrics' has no attribute {name!r}")


@dataclass(frozen=True)
class Metric:
    """One set-level metric: its name (the database, JSON and study-file key), the header the
    reports print, and how it reduces the per-image columns of a split to one number."""

    name: str
    header: str
    reduce: Callable[[dict[str, np.ndarray]], float]


def metric(name: str, header: str | None = None) -> Callable:
    """Register ``fn(columns) -> float`` as a metric. ``columns`` holds one array per per-image
    key: ``game0..game3``, ``error`` (pred - true), ``pred_count``, ``true_count``."""

    def add(fn: Callable[[dict[str, np.ndarray]], float]) -> Callable:
        register("metric", name)(Metric(name, header or name.upper(), fn))
        return fn

    return add


def metrics() -> tuple[Metric, ...]:
    """Every registered metric, the official ones first: the one list the runs database, the
    reports, selection and tuning read."""
    return tuple(lookup("metric", name) for name in names("metric"))


def metric_names() -> tuple[str, ...]:
    return names("metric")


def _game_level(level: int) -> None:
    metric(f"game{level}", f"GAME{level}")(lambda columns: float(columns[f"game{level}"].mean()))


for _level in GAME_LEVELS:
    _game_level(_level)


@metric("rmse", "RMSE")
def _rmse(columns: dict[str, np.ndarray]) -> float:
    return math.sqrt(float(np.mean(columns["error"] ** 2)))


@metric("mae", "MAE")
def _mae(columns: dict[str, np.ndarray]) -> float:
    return float(np.mean(np.abs(columns["error"])))


def selection_score(values: dict[str, float | None], name: str) -> float:
    """What checkpoint (and best-trial) selection minimises: metric ``name`` of ``values``,
    or ``game_sum`` = GAME0 + ... + GAME3; infinite when a value it needs is missing."""
    names = [f"game{level}" for level in GAME_LEVELS] if name == "game_sum" else [name]
    picked = [values.get(n) for n in names]
    return float("inf") if None in picked else float(sum(picked))


# Measured only on synthetic data, whose generator knows each head's true position in the
# moving image (model.engine.evaluate): stored with the metrics where present, not registered,
# since a split of real data has no value for them.
ALIGN_KEYS = ("align_residual_px", "align_baseline_px")

IMAGE_COLUMNS = (*(f"game{level}" for level in GAME_LEVELS), "error", "pred_count", "true_count")


def aggregate(per_image: list[dict[str, Any]]) -> dict[str, float]:
    """Set-level metrics: every registered metric (``game0..game3``, ``rmse``, ``mae``, ...)
    and ``n_images``."""
    if not per_image:
        raise ValueError("per_image=[] is not valid; aggregate needs at least one image")
    for index, row in enumerate(per_image):
        missing = [k for k in IMAGE_COLUMNS if k not in row]
        if missing:
            raise ValueError(f"per_image[{index}] lacks {', '.join(missing)}")
    columns = {
        key: np.array([float(row[key]) for row in per_image], dtype=np.float64)
        for key in IMAGE_COLUMNS
    }
    summary = {m.name: float(m.reduce(columns)) for m in metrics()}
    summary["n_images"] = len(per_image)
    return summary
