"""One Optuna trial is one run in the runs database: params in, val objective out.

The trial's params are config overrides of the tuned variant, recorded under the variant
``<variant>-tune`` (``G-tune``) of the study, so reports and plots read tuned runs exactly as
ablation runs; ``RunStore.set_trial`` links each run to its Optuna study and trial number as
soon as it is claimed. The val objective is reported every evaluated epoch, and a pruner's
verdict stops the run through ``ablate.run.hooks.Pruned``. Test metrics are computed by the
trainer as for any run, but the objective never reads them.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from ablate.db import RunStore
from ablate.db.host import hostname
from ablate.errors import StudyError
from ablate.paths import inside
from ablate.run.execute import SplitsCache, execute
from ablate.run.hooks import Chain, Hooks, Pruned, Reporter, RunOutcome
from ablate.study.plan import RunSpec, make_spec, plan
from ablate.study.study import Study, Variant
from ablate.tune.options import TuneOptions
from ablate.tune.space import TuneSpec, objective_metrics

TUNE_SUFFIX = "-tune"  # variant name of the trials' runs: G -> G-tune
BEST_SUFFIX = "-best"  # variant name of the --confirm-seeds runs: G -> G-best
TRIAL_SEED = 0  # every trial trains with the same seed, so params are all that differ


class TrialFailed(Exception):
    """The trial's run failed; the trial is recorded as failed and the search goes on."""


def with_variant(study: Study, base: str, name: str, label: str) -> Study:
    """``study`` plus a variant ``name`` that is ``base`` under another name."""
    if name in study.variants:
        raise StudyError(f"{study.path}: variant {name!r} is reserved for ablate tune; rename it")
    parent = study.variant(base)
    variant = Variant(name, label, base, dict(parent.overrides), {})
    return dataclasses.replace(study, variants={**study.variants, name: variant})


def val_metrics(source: dict[str, Any]) -> dict[str, float | None]:
    """``game0``.. from a row keyed ``val_game0``.. (an epoch row, or ``Run.as_dict()``)."""
    return {metric: source.get(f"val_{metric}") for metric in objective_metrics()}


class TrialHooks(Hooks):
    """Tag the claimed run with its trial; report the val objective every epoch and stop
    the run when the pruner says so."""

    def __init__(self, store: RunStore, trial: optuna.Trial, tune_study: str, spec: TuneSpec,
                 params: dict[str, Any]) -> None:
        self.store, self.trial, self.tune_study = store, trial, tune_study
        self.spec, self.params = spec, params

    def on_claimed(self, spec: RunSpec, outcome: RunOutcome) -> None:
        # Tagged before training, so a run killed mid-training still names its trial.
        self.store.set_trial(outcome.run_id, self.tune_study, self.trial.number, self.params)
        self.trial.set_user_attr("run_id", outcome.run_id)

    def on_epoch(self, epoch: int, row: dict[str, float]) -> None:
        values = self.spec.values(val_metrics(row))
        if values is None or self.spec.multi:  # Optuna cannot prune multi-objective
            return
        self.trial.report(values[0], epoch)
        if self.trial.should_prune():
            raise Pruned(f"val {self.spec.label} {values[0]:.4g} at epoch {epoch}")


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
        hooks = Chain(TrialHooks(self.store, trial, self.tune_study, self.spec, params),
                      self.reporter)
        outcome = execute(self.store, self.trial_spec(trial.number, params), hooks, self.splits)
        return self._result(trial, outcome)

    def trial_spec(self, number: int, params: dict[str, Any]) -> RunSpec:
        """runs/<study>/<tune study>/trial-0007-<config hash>: never another config's folder.
        Forced: a trial that samples params already trained gets a run of its own."""
        config = self._study.config(self.variant, TRIAL_SEED, {**self.extra, **params})
        folder = inside(self.save_root, self.study.name, self.tune_study,
                        f"trial-{number:04d}-{config.config_hash()}")
        return make_spec(self._study, self.variant, TRIAL_SEED, config, folder, force=True)

    def _result(self, trial: optuna.Trial, outcome: RunOutcome) -> float | list[float]:
        if outcome.status == "pruned":
            raise optuna.TrialPruned(f"run {outcome.run_id} pruned")
        error = None
        if outcome.status == "failed":
            error = f"run {outcome.run_id} failed: {outcome.error}"
        elif not outcome.trained:
            error = f"run {outcome.run_id} with the same config is busy in another worker"
        else:
            values = self.spec.values(val_metrics(self.store.get_run(outcome.run_id).as_dict()))
            if values is not None:
                return values if self.spec.multi else values[0]
            error = f"run {outcome.run_id} has no finite val {self.spec.label}"
        trial.set_user_attr("error", error)
        raise TrialFailed(error)


def confirm_best(store: RunStore, study: Study, spec: TuneSpec, tune_study: str,
                 params: dict[str, Any], options: TuneOptions,
                 reporter: Reporter | None = None) -> list[RunOutcome]:
    """Retrain the best params with seeds 0..N-1 (``options.confirm_seeds``) as normal runs
    (val-selected, tested), recorded as the variant ``<variant>-best``; already done seeds
    are skipped, their test metrics read back from the database."""
    name = spec.variant + BEST_SUFFIX
    label = f"{study.variants[spec.variant].label} (best of {tune_study})"
    confirmed = with_variant(study, spec.variant, name, label)
    specs = plan(confirmed, [name], list(range(options.confirm_seeds)),
                 {**options.extra, **params}, options.save_root)
    cache = SplitsCache()
    outcomes = [execute(store, run, reporter, cache) for run in specs]
    for outcome in outcomes:
        if outcome.status == "done" and not outcome.test:
            row = store.get_run(outcome.run_id).as_dict()
            outcome.test = {m: row.get(m) for m in objective_metrics()}
    return outcomes
