"""Typed, frozen configuration for the network, its losses, the data and the training recipe.

Every field name is global: study files, ``--set key=value``, the runs database and Optuna
search spaces all use the same flat names, so no two sections share a field name. Building a
section checks every field (``model.config.validation``): its type, finiteness, range and
choices, where the choices of a switchable part are the names in its registry
(``model.registry``). ``sections`` holds the four sections, ``run`` the ``RunConfig`` that joins
them and its hash.
"""

from __future__ import annotations

from typing import Any

from model.config.run import (
    EXECUTION_FIELDS,
    FIELD_SECTION,
    MIN_CROP,
    SECTIONS,
    RunConfig,
    field_section,
    unknown_key_error,
)
from model.config.sections import (
    DEVICES,
    LOCAL_COUNT_LEVELS,
    PRECISIONS,
    REFERENCES,
    SCHEDULES,
    DataConfig,
    LossConfig,
    ModelConfig,
    TrainConfig,
    select_metrics,
)


def __getattr__(name: str) -> Any:
    # SELECT_METRICS is read when used, so a metric registered after import is selectable.
    if name == "SELECT_METRICS":
        return select_metrics()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEVICES",
    "EXECUTION_FIELDS",
    "FIELD_SECTION",
    "LOCAL_COUNT_LEVELS",
    "MIN_CROP",
    "PRECISIONS",
    "REFERENCES",
    "SCHEDULES",
    "SECTIONS",
    "DataConfig",
    "LossConfig",
    "ModelConfig",
    "RunConfig",
    "TrainConfig",
    "field_section",
    "select_metrics",
    "unknown_key_error",
]
