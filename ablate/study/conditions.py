"""A study's conditions: each ``[conditions.NAME]`` table holds settings (any config key, as a
variant's) applied on top of every variant, so ``study run`` trains variants x conditions x
seeds (registered vs misaligned data, or one dataset per condition).

``dataset = "rgbtcc"`` in a condition is a report hint, not a config field: its published rows
are that dataset's, and a study whose conditions are all different datasets gets one report
table with a column group per dataset. A condition named like a dataset implies it::

    [conditions.rgbtcc]

    [conditions.drone]
    dataset = "dronergbt"
    val_size = 100
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ablate.errors import StudyError
from ablate.study.file import NAME_PATTERN, table_changes, today_keys, validate
from model.registry import unknown_choice as unknown

CONDITION_KEYS = ("dataset",)  # report hints of a condition; every other key is a config field
DATASET_HINTS = ("rgbtcc", "dronergbt")  # the datasets with published rows (report.baselines)


@dataclass(frozen=True)
class Condition:
    name: str
    settings: dict[str, Any]  # flat config keys, applied after the variant's
    dataset: str | None = None  # whose published rows the report shows (DATASET_HINTS)


def parse_conditions(tables: dict[str, Any], defaults: dict[str, Any],
                     path: Path) -> dict[str, Condition]:
    """Each ``[conditions.NAME]`` table: its settings checked against the defaults, as a
    variant's are, and its ``dataset`` hint (or the dataset its name is)."""
    out: dict[str, Condition] = {}
    for name, table in tables.items():
        where = f"{path} condition {name}"
        if not NAME_PATTERN.match(name) or not isinstance(table, dict):
            raise StudyError(f"{where}: a condition is a [conditions.NAME] table, NAME made of "
                             "letters, digits, '_' or '-'")
        dataset = table.get("dataset", name if name in DATASET_HINTS else None)
        if dataset is not None and dataset not in DATASET_HINTS:
            raise StudyError(f"{where}: {unknown('dataset', str(dataset), list(DATASET_HINTS))}")
        settings = today_keys(table_changes(table, where, CONDITION_KEYS), defaults, where)
        validate({**defaults, **settings}, where, set(settings))
        out[name] = Condition(name, settings, dataset)
    return out
