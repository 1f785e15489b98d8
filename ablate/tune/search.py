"""The Optuna study behind ``ablate tune``: its sampler and pruner, creating or resuming it,
and optimizing in this process."""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import optuna
from optuna.study import MaxTrialsCallback
from optuna.trial import FrozenTrial, TrialState

from ablate.db import RunStore
from ablate.errors import UsageError
from ablate.study.study import Study
from ablate.tune.objective import Objective, TrialFailed
from ablate.tune.space import TuneSpec
from ablate.tune.storage import fail_dead_trials

PRUNERS = ("median", "hyperband", "none")
SAMPLERS = ("tpe", "random", "cmaes")
OBJECTIVE_ATTR = "ablate_objective"  # study user attr: what this study optimizes


@dataclass(frozen=True)
class Strategy:
    """The validated --sampler and --pruner; None picks the default for the objective."""

    sampler: str  # tpe | random | cmaes | nsga2
    pruner: str  # median | hyperband | none

    @classmethod
    def choose(cls, spec: TuneSpec, sampler: str | None, pruner: str | None) -> Strategy:
        if sampler is not None and sampler not in SAMPLERS:
            raise UsageError(f"unknown sampler {sampler!r}; valid: {', '.join(SAMPLERS)}")
        if pruner is not None and pruner not in PRUNERS:
            raise UsageError(f"unknown pruner {pruner!r}; valid: {', '.join(PRUNERS)}")
        if spec.multi and pruner not in (None, "none"):
            raise UsageError(f"multi-objective search ({spec.label}) cannot prune; "
                              f"drop --pruner {pruner} or give --pruner none")
        if spec.multi and sampler == "cmaes":
            raise UsageError("--sampler cmaes is single-objective; the multi-objective search "
                              f"({spec.label}) uses NSGA-II, or give --sampler tpe|random")
        if sampler == "cmaes" and importlib.util.find_spec("cmaes") is None:
            raise UsageError("--sampler cmaes needs the cmaes package: pip install cmaes")
        default_sampler = "nsga2" if spec.multi else "tpe"
        default_pruner = "none" if spec.multi else "median"
        return cls(sampler or default_sampler, pruner or default_pruner)

    def build_sampler(self) -> optuna.samplers.BaseSampler:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            if self.sampler == "random":
                return optuna.samplers.RandomSampler()
            if self.sampler == "cmaes":
                return optuna.samplers.CmaEsSampler(warn_independent_sampling=False)
            if self.sampler == "nsga2":
                return optuna.samplers.NSGAIISampler()
            # constant_liar: parallel workers do not all sample next to the same running trial
            return optuna.samplers.TPESampler(constant_liar=True)

    def build_pruner(self, epochs: int) -> optuna.pruners.BasePruner:
        if self.pruner == "median":
            return optuna.pruners.MedianPruner()
        if self.pruner == "hyperband":
            return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(epochs, 1))
        return optuna.pruners.NopPruner()


def default_study_name(study: Study, spec: TuneSpec) -> str:
    return f"{study.name}-{spec.variant}-tune"


def create_or_load(storage: optuna.storages.BaseStorage, name: str, spec: TuneSpec,
                   sampler: optuna.samplers.BaseSampler,
                   pruner: optuna.pruners.BasePruner) -> optuna.Study:
    """Create the study, or resume it if it exists and optimizes the same objective."""
    study = optuna.create_study(storage=storage, study_name=name, sampler=sampler, pruner=pruner,
                                directions=spec.directions, load_if_exists=True)
    wanted = {"objective": spec.label, "directions": spec.directions}
    found = study.user_attrs.get(OBJECTIVE_ATTR)
    if found is None:
        study.set_user_attr(OBJECTIVE_ATTR, wanted)
    elif found != wanted:
        raise UsageError(f"Optuna study {name!r} exists and optimizes {found['objective']} "
                          f"({', '.join(found['directions'])}), not {spec.label}; "
                          "give another --study-name")
    names = metric_names(spec)
    if study.metric_names != names:  # optuna-dashboard labels its plots with these
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(names)
    return study


def metric_names(spec: TuneSpec) -> list[str]:
    """What each objective value is, on val: ``["val_game3"]``, ``["val_game0", "val_game3"]``
    or ``["val_1*game1+1*game3"]``."""
    return [f"val_{name}" for name in (spec.objectives if spec.multi else (spec.label,))]


def optimize(study: optuna.Study, objective: Objective, n_trials: int, timeout: float | None,
             on_trial: Callable[[FrozenTrial], None] | None = None,
             max_trials: int | None = None) -> None:
    """Run ``n_trials`` trials (fewer if ``timeout`` seconds pass, or once the study holds
    ``max_trials`` complete or pruned trials) in this process."""
    store: RunStore = objective.store

    def trial_with_cleanup(trial: optuna.Trial) -> float | list[float]:
        fail_dead_trials(study, store)  # journal storage: Optuna's heartbeat does not cover it
        return objective(trial)

    fail_dead_trials(study, store)  # first, so their retries run in this call
    callbacks = [lambda _study, trial: on_trial(trial)] if on_trial is not None else []
    if max_trials is not None:
        counted = (TrialState.COMPLETE, TrialState.PRUNED)
        if len(study.get_trials(deepcopy=False, states=counted)) >= max_trials:
            return
        callbacks.append(MaxTrialsCallback(max_trials, states=counted))
    study.optimize(trial_with_cleanup, n_trials=n_trials, timeout=timeout, catch=(TrialFailed,),
                   callbacks=callbacks, gc_after_trial=True)
