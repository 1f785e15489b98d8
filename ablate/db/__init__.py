"""The runs database: every run of every study and tuning, its epochs and per-image results.

``RunStore`` is the API; the tables live in ``models``, the claim rules in ``claim``, opening
a URL in ``connect``, versioning in ``schema``.
"""

from ablate.db.claim import ClaimResult, is_stale
from ablate.db.host import code_version
from ablate.db.models import METRICS, SCHEMA_VERSION, STATUSES, Epoch, ImageResult, Run
from ablate.db.store import RunStore

__all__ = [
    "METRICS",
    "SCHEMA_VERSION",
    "STATUSES",
    "ClaimResult",
    "Epoch",
    "ImageResult",
    "Run",
    "RunStore",
    "code_version",
    "is_stale",
]
