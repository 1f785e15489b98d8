"""``build_report``: everything a report shows, gathered from the runs database once, so that
every output format renders the same numbers."""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ablate.db import RunStore
from ablate.errors import AblateError, UsageError
from ablate.report import recipe, stats
from ablate.report.alignment import alignment_frame
from ablate.report.baselines import (
    DATASETS,
    DEFAULT_DATASET,
    Baseline,
    choose,
    choose_per_dataset,
    load_baselines,
)
from ablate.report.conditions import CrossRow, cross_conditions
from ablate.report.family import CORRECTIONS, adjust_family
from ablate.report.recipe import Comparison, RecipeTest
from ablate.report.robustness import (
    Curves,
    RobustnessRow,
    robustness_by_rotation,
    robustness_table,
)
from ablate.report.runs import VariantRow, resolve_study, variant_rows
from ablate.report.significance import comparison, significance_frame
from ablate.report.table import build_table, table_metrics
from ablate.study.study import Study
from model.data.errors import DataError
from model.data.layouts import detect_format  # not model.data: that imports torch

SPLITS = ("test", "val")


@dataclass
class Report:
    study: str
    description: str
    split: str
    db: str
    reference: str  # key of the reference baseline row ("BM")
    baselines: list[Baseline]
    rows: list[VariantRow]
    table: pd.DataFrame  # see table.build_table
    # One row per (row, against, metric): against is "parent" or "first"; see stats.PairedTest.
    significance: pd.DataFrame
    sig_metric: str  # the GAME level the main table's significance columns show
    first: str | None  # the first variant (A): every variant is also tested against it
    dataset: str
    metrics: list[str]  # the main table's metric columns (table.table_metrics)
    notes: list[str] = field(default_factory=list)
    curves: dict[str, list[tuple[int, list[dict[str, Any]]]]] = field(default_factory=dict)
    tuning: list[dict[str, Any]] = field(default_factory=list)
    baseline_dataset: str = "RGBT-CC"  # the dataset whose published rows are shown
    condition: str = ""  # the study condition of these rows ("" in a study without any)
    # A study with conditions: one Report per condition (the first is the reference), and
    # each variant's change from the reference condition (ablate.report.conditions).
    parts: list[tuple[str, Report]] = field(default_factory=list)
    cross: list[CrossRow] = field(default_factory=list)
    # Every condition is another dataset: one main table with a column group per part.
    by_dataset: bool = False
    dataset_key: str = DEFAULT_DATASET  # the key of baseline_dataset ("rgbtcc")
    # What ``ablate robustness`` stored for these rows' runs, per rotation ({}: nothing).
    robustness: Curves = field(default_factory=dict)

    @property
    def robustness_rows(self) -> list[RobustnessRow]:
        """The robustness table: a row's mean test GAME0-3 per (rotation, shift)."""
        return robustness_table(self.robustness)

    # The recipe-level tests: how p-values are corrected, over how many, by which test, and
    # the share of the other variant's GAME that "seeds needed" is sized for.
    correction: str = "holm"
    family_size: int = 0
    recipe_test: str = "t"
    effect: float = 0.05

    def test(self, row: str, against: str, metric: str | None = None) -> Comparison | str:
        """The recipe- and image-level tests of ``row`` against its "parent" or the "first"
        variant ("" when there is no such comparison)."""
        metric = metric or self.sig_metric
        sig = self.significance
        hit = sig[(sig["row"] == row) & (sig["against"] == against) & (sig["metric"] == metric)]
        return "" if hit.empty else comparison(hit.iloc[0])


@dataclass(frozen=True)
class ReportOptions:
    """What ``ablate report`` asks for besides the study."""

    split: str = "test"
    baselines: str | None = None  # "BM,IADM", "all"; BM is always included
    baseline_file: str | None = None
    sig_metric: str = "game3"  # the GAME level of the main table's significance columns
    dataset: str | None = None  # rgbtcc, dronergbt; None: the layout of the runs' data path
    correction: str = "holm"  # family.CORRECTIONS
    recipe_test: str = "t"  # recipe.METHODS: paired t or exact Wilcoxon over the seeds
    effect: float = 0.05  # seeds_needed is sized for this share of the other variant's GAME

    def check(self) -> None:
        for flag, value, valid in (("--split", self.split, SPLITS),
                                   ("--sig-metric", self.sig_metric, stats.GAME_METRICS),
                                   ("--correction", self.correction, tuple(CORRECTIONS)),
                                   ("--recipe-test", self.recipe_test, recipe.METHODS)):
            if value not in valid:
                raise UsageError(f"{flag} {value!r} is not valid; choose one of "
                                  f"{', '.join(valid)}")
        if not 0 < self.effect < 1:
            raise UsageError(f"--effect {self.effect} is not valid; give a share of the "
                              "other variant's GAME between 0 and 1, e.g. 0.05")


@dataclass(frozen=True)
class _Source:
    """Where one report's rows come from."""

    store: RunStore
    name: str
    study: Study | None
    notes: list[str]
    options: ReportOptions


def build_report(store: RunStore, study: str | None = None,
                 options: ReportOptions | None = None, **fields: Any) -> Report:
    """Gather the rows of ``study`` (a name in the database or a study file; None: the only
    study there) with the chosen baseline rows; ``fields``: ReportOptions' fields by name
    (``build_report(store, "demo", baselines="BM,IADM")``)."""
    options = dataclasses.replace(options or ReportOptions(), **fields)
    options.check()
    name, study_file, study_notes = resolve_study(store, study)
    src = _Source(store, name, study_file, study_notes, options)
    conditions = _conditions(store, name, study_file)
    if not conditions:
        report = _build(src, options.baselines, options.dataset)
        _adjust([("", report)], options.correction, [])
        return report
    hints = study_file.conditions if study_file is not None else {}
    datasets = [hints[c].dataset if c in hints else None for c in conditions]
    # Conditions that are all different datasets: one table, a column group per dataset.
    by_dataset = (len(conditions) > 1 and None not in datasets
                  and len(set(datasets)) == len(datasets))
    wanted = (choose_per_dataset(options.baselines, datasets, options.baseline_file)
              if by_dataset else dict.fromkeys(datasets, options.baselines))
    parts = [(condition, _build(src, wanted[hint], hint or options.dataset, condition))
             for condition, hint in zip(conditions, datasets, strict=True)]
    # Different datasets share no images, and their errors differ by what the datasets are:
    # the per-dataset columns already show them side by side.
    cross = [] if by_dataset else cross_conditions(store, parts, options)
    _adjust(parts, options.correction, cross)
    return dataclasses.replace(parts[0][1], condition="", parts=parts, cross=cross,
                               by_dataset=by_dataset)


def _adjust(parts: list[tuple[str, Report]], correction: str, cross: list[CrossRow]) -> None:
    """One multiple-comparison correction over every recipe-level test the report shows: each
    part's comparisons and the differences between conditions."""
    shown = [(row, metric) for row in cross for metric, test in row.recipe.items()
             if isinstance(test, RecipeTest) and test.claim]
    size, adjusted = adjust_family(
        {condition: part.significance for condition, part in parts}, correction,
        np.array([row.recipe[metric].p_value for row, metric in shown]))
    for (row, metric), p in zip(shown, adjusted, strict=True):
        row.recipe[metric] = dataclasses.replace(row.recipe[metric], p_adjusted=float(p))
    for _, part in parts:
        part.family_size = size


def _conditions(store: RunStore, name: str, study: Study | None) -> list[str]:
    """The conditions with done runs: the study's in file order, then any other recorded."""
    found = {run.condition for run in store.list_runs(name, "done") if run.condition}
    declared = [c for c in (study.conditions if study is not None else {}) if c in found]
    return declared + sorted(found - set(declared))


def _build(src: _Source, baselines: str | None, dataset: str | None,
           condition: str | None = None) -> Report:
    """The report of one condition's runs (``None``: every run of a study without any)."""
    store, options = src.store, src.options
    reference = src.study.baseline if src.study is not None else "BM"
    tuning, tune_notes = _tuning(store, src.name) if not condition else ([], [])
    best_trials = {t["best_run_id"] for t in tuning if isinstance(t.get("best_run_id"), int)}
    rows = variant_rows(store, src.name, src.study, best_trials, condition)
    dataset, data_notes = (dataset, []) if dataset is not None else _baseline_dataset(rows)
    chosen = choose(load_baselines(options.baseline_file, dataset=dataset), baselines,
                    reference)
    names = table_metrics()
    table = build_table(chosen, rows, options.split, reference, names)
    alignment = alignment_frame(store, rows, options.split)
    if not alignment.empty:  # synthetic runs: the alignment at the heads, as extra columns
        table = table.join(alignment)
    first = next((row.key for row in rows if not row.tuned), None)
    significance, sig_notes = significance_frame(store, rows, first, options)
    curves = {row.key: [(run.seed, store.epochs(run.id)) for run in row.runs] for row in rows}
    robustness, robust_notes = robustness_by_rotation(rows)
    notes = (src.notes + data_notes + [note for row in rows for note in row.notes]
             + sig_notes + tune_notes + robust_notes + _left_out(store, src.name, condition))
    if not rows[0].runs[-1].config.get("data", {}).get("data_path"):
        notes.insert(0, "the variants ran on the built-in synthetic data: compare them with "
                        f"each other; the published rows ({DATASETS[dataset]} test) are "
                        "context, and a mark of beating BM means nothing here")
    return Report(src.name, src.study.description if src.study is not None else "",
                  options.split, store.display_url, reference, chosen, rows, table,
                  significance, options.sig_metric, first, _dataset(rows), names, notes,
                  curves, tuning, DATASETS[dataset], condition or "", dataset_key=dataset,
                  robustness=robustness, correction=options.correction,
                  recipe_test=options.recipe_test, effect=options.effect)


def _left_out(store: RunStore, name: str, condition: str | None) -> list[str]:
    left_out = Counter(run.status for run in store.list_runs(name, condition=condition)
                       if run.status != "done")
    if not left_out:
        return []
    return ["not in the table (not done): " + ", ".join(
        f"{n} {status}" for status, n in sorted(left_out.items())) + " run(s)"]


def _tuning(store: RunStore, study: str) -> tuple[list[dict[str, Any]], list[str]]:
    """Each tuning's summary from ``ablate.tune``, looked up where ``ablate tune`` keeps it."""
    names = sorted({run.tune_study for run in store.list_runs(study) if run.tune_study})
    if not names:
        return [], []
    # Imported here: Optuna is slow to import and only tuned studies need it.
    from ablate.tune import tune_summary

    out, notes = [], []
    for name in names:
        reasons = []
        for url in _storages(store):
            try:
                summary = tune_summary(url, name)
            except AblateError as exc:  # not in this storage, or the storage cannot be read
                reasons.append(str(exc))
                continue
            out.append({"name": name, **summary})
            break
        else:
            notes.append(f"tuning {name!r} skipped: {'; '.join(reasons)}")
    return out, notes


def _storages(store: RunStore) -> list[str]:
    """Where ``ablate tune`` keeps its Optuna studies: the runs database itself, or (several
    workers on SQLite) the journal file ``ablate.tune.storage`` puts next to it."""
    from ablate.tune.storage import journal_path

    url = store.url.render_as_string(hide_password=False)
    journal = journal_path(store.url)
    return [url, str(journal)] if journal is not None and journal.is_file() else [url]


def _baseline_dataset(rows: list[VariantRow]) -> tuple[str, list[str]]:
    """The dataset whose published rows fit the runs: the layout of their data path."""
    path = rows[0].runs[-1].config.get("data", {}).get("data_path")
    if not path:
        return DEFAULT_DATASET, []
    try:
        return detect_format(Path(path)), []
    except DataError:
        return DEFAULT_DATASET, [f"the data path {path} is not readable here, so its layout "
                                 f"is unknown: the published {DATASETS[DEFAULT_DATASET]} rows "
                                 "are shown (choose with --dataset)"]


def _dataset(rows: list[VariantRow]) -> str:
    data = rows[0].runs[-1].config.get("data", {})
    if data.get("data_path"):
        return str(data["data_path"])
    return (f"built-in synthetic data (RGB shifted up to {data.get('synth_shift', '?')} px and "
            f"rotated up to {data.get('synth_rotation', '?')} deg against the thermal labels)")
