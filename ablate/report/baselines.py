"""Published reference rows (``studies/baselines.toml``) and the user's (``--baseline-file``).

Rows are per dataset (``[baselines.rgbtcc.BM]``, ``[baselines.dronergbt.BM]``): the same
method has other numbers on another dataset, and a study is compared with its own dataset's
rows only. A row written directly as ``[baselines.KEY]`` (the older form) is an RGBT-CC row.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path

from ablate.errors import StudyError, UsageError
from ablate.paths import STUDIES_DIR
from model.metrics import metric_names

DEFAULT_FILE = STUDIES_DIR / "baselines.toml"
REQUIRED = ("name", "source")
DATASETS = {"rgbtcc": "RGBT-CC", "dronergbt": "DroneRGBT"}  # key in the file: display name
DEFAULT_DATASET = "rgbtcc"


@dataclass(frozen=True)
class Baseline:
    key: str  # what --baselines takes: "BM"
    name: str  # the row's text: "Broker Modality (ECCV'24)"
    metrics: dict[str, float]  # the published ones among the registered metrics; others absent
    source: str
    dataset: str = DEFAULT_DATASET  # a key of DATASETS


def load_baselines(extra_file: str | Path | None = None,
                   default_file: str | Path | None = DEFAULT_FILE,
                   dataset: str = DEFAULT_DATASET) -> dict[str, Baseline]:
    """Every known row of ``dataset``, in file order; rows of ``extra_file`` replace rows of
    the same dataset and key."""
    if dataset not in DATASETS:
        raise UsageError(f"dataset {dataset!r} has no published rows; choose one of "
                         f"{', '.join(DATASETS)}")
    rows: dict[str, Baseline] = {}
    if default_file is not None:
        path = Path(default_file)
        if not path.is_file():
            raise StudyError(f"baselines file {path} is missing; pass --baseline-file FILE")
        rows.update(_read(path))
    if extra_file is not None:
        rows.update(_read(Path(extra_file)))
    return {key: row for (name, key), row in rows.items() if name == dataset}


def choose(rows: dict[str, Baseline], wanted: str | None, reference: str) -> list[Baseline]:
    """Parse ``--baselines`` ("BM,IADM", "all" or None for just the reference) in the order
    given; the reference row (BM) is always included because every delta is taken to it."""
    if reference not in rows:
        raise StudyError(f"the reference baseline {reference!r} is not in the baselines files; "
                          f"known: {', '.join(rows)}")
    if wanted is None or not wanted.strip():
        keys = [reference]
    elif wanted.strip().lower() == "all":
        keys = list(rows)
    else:
        keys = list(dict.fromkeys(k.strip() for k in wanted.split(",") if k.strip()))
        unknown = [k for k in keys if k not in rows]
        if unknown:
            raise UsageError(f"unknown baseline {', '.join(map(repr, unknown))}; "
                              f"known: {', '.join(rows)} (or all)")
        if reference not in keys:
            keys.append(reference)
    return [rows[k] for k in keys]


def choose_per_dataset(wanted: str | None, datasets: list[str],
                       extra_file: str | Path | None = None) -> dict[str, str | None]:
    """``--baselines`` for a report with a column group per dataset: a key that only some of
    ``datasets`` publish is chosen in those (a dash in the others); one that none publishes
    is an error. "all" and None mean the same in every dataset."""
    if wanted is None or wanted.strip().lower() in ("", "all"):
        return dict.fromkeys(datasets, wanted)
    keys = list(dict.fromkeys(k.strip() for k in wanted.split(",") if k.strip()))
    known = {dataset: load_baselines(extra_file, dataset=dataset) for dataset in datasets}
    unknown = [k for k in keys if not any(k in rows for rows in known.values())]
    if unknown:
        every = dict.fromkeys(key for rows in known.values() for key in rows)
        raise UsageError(f"unknown baseline {', '.join(map(repr, unknown))}; "
                         f"known: {', '.join(every)} (or all)")
    return {dataset: ",".join(k for k in keys if k in known[dataset]) for dataset in datasets}


def _read(path: Path) -> dict[tuple[str, str], Baseline]:
    if not path.is_file():
        raise UsageError(f"baseline file not found: {path}")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise StudyError(f"{path}: {str(exc).splitlines()[0]}") from None
    tables = raw.get("baselines")
    if not isinstance(tables, dict) or not tables:
        raise StudyError(f"{path}: no rows; write one [baselines.DATASET.KEY] table per row with "
                         f"{_fields()}")
    rows = {}
    for key, table in tables.items():
        if key in DATASETS and isinstance(table, dict) and "name" not in table:
            for inner, row in table.items():
                rows[key, inner] = _row(path, f"{key}.{inner}", inner, row, key)
        else:
            rows[DEFAULT_DATASET, key] = _row(path, key, key, table, DEFAULT_DATASET)
    return rows


def _fields() -> str:
    return f"{' and '.join(REQUIRED)} and any of {', '.join(metric_names())}"


def _row(path: Path, table_name: str, key: str, table: object, dataset: str) -> Baseline:
    where = f"{path} [baselines.{table_name}]"
    if not isinstance(table, dict):
        raise StudyError(f"{where}: must be a table with {_fields()}")
    names = metric_names()
    missing = [f for f in REQUIRED if f not in table]
    unknown = sorted(set(table) - set(REQUIRED) - set(names))
    if missing or unknown:
        problem = f"missing {', '.join(missing)}" if missing else f"unknown {', '.join(unknown)}"
        raise StudyError(f"{where}: {problem}; a row has {_fields()}")
    metrics = {}
    for name in (n for n in names if n in table):
        value = table[name]
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(
                value) or value < 0:
            raise StudyError(f"{where}: {name}={value!r} is not a non-negative number")
        metrics[name] = float(value)
    for name in REQUIRED:
        if not isinstance(table[name], str) or not table[name].strip():
            raise StudyError(f"{where}: {name} must be a non-empty string")
    return Baseline(str(key), table["name"], metrics, table["source"], dataset)
