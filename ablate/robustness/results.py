"""The robustness results stored beside a run's checkpoint: their file name, their columns,
and reading them back (for the report, which imports no torch)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from model.errors import CheckpointError

RESULTS = "robustness.json"
KEYS = ("game0", "game1", "game2", "game3", "rmse")  # the metrics each result row keeps


def read_results(path: Path) -> list[dict[str, Any]]:
    """The rows stored in a robustness.json, [] when there is none; a file that is not such a
    list is a one-line CheckpointError naming it."""
    if not path.exists():
        return []
    try:
        rows = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} is not readable robustness results: {exc}") from None
    if not isinstance(rows, list) or not all(
            isinstance(r, dict) and {"shift", "rotation", *KEYS} <= r.keys() for r in rows):
        raise CheckpointError(f"{path} is not a list of robustness result rows")
    return rows
