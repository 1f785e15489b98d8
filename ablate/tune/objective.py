"""One Optuna trial is one run in the runs database: params in, val objective out.

The trial's params are config overrides of the tuned variant, recorded under the variant
``<variant>-tune`` (``G-tune``) of the study, so reports and plots read tuned runs exactly as
ablation runs; ``RunStore.set_trial`` links each run to its Optuna study and trial number.
The val objective is reported every evaluated epoch, and a pruner's verdict stops the run
through ``ablate.runner.Pruned``. Test metrics are computed by the trainer as for any run, but
the objective never reads them.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from ablate.db import RunStore
from ablate.db.host import hostname
from ablate.errors import AblateError
from ablate.runner import Pruned, Reporter, RunOutcome, SplitsCache, run_one
from ablate.study import Study, Variant
from ablate.tune.space import OBJECTIVE_METRICS, TuneSpec

TUNE_SUFFIX = "-tune"  # variant name of the trials' runs: G -> G-tune
BEST_SUFFIX = "-best"  # variant name of the --confirm-seeds runs: G -> G-best
TRIAL_SEED = 0  # every trial trains with the same seed, so params are all that differ


class TrialFailed(Exception):
    """The trial's run failed; the trial is recorded as failed and the search goes on."""


def with_variant(study: Study, base: str, name: str, label: str) -> Study:
    """``study`` plus a variant ``name`` that is ``base`` under another name."""
    if name in study.variants:
        raise AblateError(f"{study.path}: variant {name!r} is reserved for ablate tune; rename it")
    parent = study.variant(base)
    variant = Variant(name, label, base, dict(parent.overrides), {})
    return dataclasses.replace(study, variants={**study.variants, name: variant})


def metrics_of(source: Callable[[str], float | None]) -> dict[str, float | None]:
    return {metric: source(metric) for metric in OBJECTIVE_METRICS}


@dataclass
class Objective:
    """``Objective(...)(trial)`` trains one trial's run and returns its val objective."""

    store: RunStore
    study: Study
    spec: TuneSpec
    tune_study: str  # the Optuna study's name
    extra: dict[str, Any]  # CLI overrides; the trial's params win over them
    save_root: Path
    reporter: Reporter | None = None
    splits: SplitsCache = field(default_factory=SplitsCache)  # decode the data once

    def __post_init__(self) -> None:
        self.variant = self.spec.variant + TUNE_SUFFIX
        label = f"{self.study.variants[self.spec.variant].label} (tuning trial)"
        self._study = with_variant(self.study, self.spec.variant, self.variant, label)

    def __call__(self, trial: optuna.Trial) -> float | list[float]:
        params = {name: param.suggest(trial) for name, param in self.spec.space.items()}
        # Who runs this trial, for fail_dead_trials; "trial" tells them from a retry's copies.
        trial.set_user_attr("host", hostname())
        trial.set_user_attr("pid", os.getpid())
        trial.set_user_attr("trial", trial.number)

        def tag(run_id: int) -> None:
            self.store.set_trial(run_id, self.tune_study, trial.number, params)
            trial.set_user_attr("run_id", run_id)

        # force: a trial that samples params already trained gets a run of its own.
        outcome = run_one(_TaggingStore(self.store, tag), self._study, self.variant, TRIAL_SEED,
                          {**self.extra, **params}, self.save_root, force=True,
                          reporter=self.reporter, splits=self.splits,
                          exact_save_dir=self._save_dir(trial, params),
                          on_epoch=self._on_epoch(trial))
        return self._result(trial, outcome)

    def _save_dir(self, trial: optuna.Trial, params: dict[str, Any]) -> Path:
        """runs/<study>/<tune study>/trial-0007-<config hash>: never another config's dir."""
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", self.tune_study)
        cfg = self._study.config(self.variant, TRIAL_SEED, {**self.extra, **params})
        name = f"trial-{trial.number:04d}-{cfg.config_hash()}"
        return self.save_root / self.study.name / safe / name

    def _on_epoch(self, trial: optuna.Trial) -> Callable[[int, dict[str, float]], None]:
        def report(epoch: int, row: dict[str, float]) -> None:
            values = self.spec.values(metrics_of(lambda m: row.get(f"val_{m}")))
            if values is None or self.spec.multi:  # Optuna cannot prune multi-objective
                return
            trial.report(values[0], epoch)
            if trial.should_prune():
                raise Pruned(f"val {self.spec.label} {values[0]:.4g} at epoch {epoch}")

        return report

    def _result(self, trial: optuna.Trial, outcome: RunOutcome) -> float | list[float]:
        if outcome.status == "pruned":
            raise optuna.TrialPruned(f"run {outcome.run_id} pruned")
        error = None
        if outcome.status == "failed":
            error = f"run {outcome.run_id} failed: {outcome.error}"
        elif outcome.status != "done" or outcome.action.startswith("skip"):
            error = f"run {outcome.run_id} with the same config is busy in another worker"
        else:
            run = self.store.get_run(outcome.run_id)
            values = self.spec.values(metrics_of(lambda m: getattr(run, f"val_{m}")))
            if values is not None:
                return values if self.spec.multi else values[0]
            error = f"run {run.id} has no finite val {self.spec.label}"
        trial.set_user_attr("error", error)
        raise TrialFailed(error)


class _TaggingStore:
    """The runs store, except that a claimed run is tagged with its trial before it trains,
    so a run killed mid-training still names its trial."""

    def __init__(self, store: RunStore, tag: Callable[[int], None]) -> None:
        self._store, self._tag = store, tag

    def claim(self, *args: Any, **kwargs: Any):
        result = self._store.claim(*args, **kwargs)
        if result.claimed:
            self._tag(result.run.id)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def confirm_best(store: RunStore, study: Study, spec: TuneSpec, tune_study: str,
                 params: dict[str, Any], extra: dict[str, Any], seeds: int, save_root: Path,
                 reporter: Reporter | None = None) -> list[RunOutcome]:
    """Retrain the best params with seeds 0..seeds-1 as normal runs (val-selected, tested),
    recorded as the variant ``<variant>-best``; already done seeds are skipped."""
    name = spec.variant + BEST_SUFFIX
    label = f"{study.variants[spec.variant].label} (best of {tune_study})"
    confirmed = with_variant(study, spec.variant, name, label)
    cache = SplitsCache()
    return [run_one(store, confirmed, name, seed, {**extra, **params}, save_root,
                    reporter=reporter, splits=cache) for seed in range(seeds)]
