"""The runs database: every run of every study and tuning, its epochs, final metrics and
per-image results, and each study's definition.

``RunStore`` is the API (writing in ``recording``, reading in ``queries``); the tables live in
``models``, the claim rules in ``claim``, opening a URL in ``connect``, versioning in
``schema`` and the steps between versions in ``migrate``.
"""

from typing import Any

from ablate.db.claim import ClaimResult, ClaimSpec, is_stale
from ablate.db.host import code_version
from ablate.db.models import SCHEMA_VERSION, STATUSES, Epoch, ImageResult, MetricValue, Run
from ablate.db.store import RunStore

__all__ = [
    "SCHEMA_VERSION",
    "STATUSES",
    "ClaimResult",
    "ClaimSpec",
    "Epoch",
    "ImageResult",
    "MetricValue",
    "Run",
    "RunStore",
    "code_version",
    "is_stale",
]


def __getattr__(name: str) -> Any:
    # ``ablate.db.METRICS`` was a copy of the metric names; it now reads the one list in
    # ``model.metrics`` at each use, so a metric registered later is included.
    if name == "METRICS":
        from model.metrics import metric_names

        return metric_names()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
