"""The ``[tune]`` table of a study file: what to tune, on which val objective, over which space.

::

    [tune]
    variant = "G"                          # default "G"
    objective = "game3"                    # or {game1 = 1.0, game3 = 1.0} (a weighted sum)
    # objectives = ["game0", "game3"]      # multi-objective: NSGA-II, no pruning
    direction = "minimize"
    n_trials = 20

    [tune.space.lr]
    type = "float"                         # float | int | categorical
    low = 1e-5
    high = 1e-3
    log = true                             # or step = ... (not both)

    [tune.space.offset_stage]
    type = "categorical"
    choices = [1, 2]

Every parameter name is a config field (``model.config.FIELD_SECTION``). Everything is checked
here, before any storage is opened, so a bad table creates no study and no trial.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import optuna

from ablate.errors import StudyError
from ablate.study.study import PER_RUN_KEYS, Study
from model.config import FIELD_SECTION, RunConfig
from model.metrics import metric_names
from model.registry import unknown_choice

TUNE_KEYS = ("variant", "objective", "objectives", "direction", "n_trials", "space")
PARAM_TYPES = ("float", "int", "categorical")
PARAM_KEYS = {
    "float": ("type", "low", "high", "log", "step"),
    "int": ("type", "low", "high", "log", "step"),
    "categorical": ("type", "choices"),
}
DIRECTIONS = ("minimize", "maximize")
DEFAULT_N_TRIALS = 20


def objective_metrics() -> tuple[str, ...]:
    """Every registered metric, read when used: a plugin's metric can be an objective."""
    return metric_names()


@dataclass(frozen=True)
class Param:
    """One search dimension: an Optuna distribution over one config field."""

    name: str
    kind: str  # float | int | categorical
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: optuna.trial.BaseTrial) -> Any:
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.name, self.low, self.high, step=self.step or 1,
                                     log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)

    def extremes(self) -> list[Any]:
        """Values that must all make a valid config: both bounds, or every choice."""
        return list(self.choices) if self.kind == "categorical" else [self.low, self.high]


@dataclass(frozen=True)
class TuneSpec:
    """A validated ``[tune]`` table."""

    variant: str
    weights: dict[str, float]  # metric -> weight; single objective = their weighted sum
    objectives: tuple[str, ...]  # two or more metrics: a multi-objective (Pareto) search
    direction: str
    n_trials: int
    space: dict[str, Param]

    @property
    def multi(self) -> bool:
        return len(self.objectives) > 1

    @property
    def label(self) -> str:
        """``game3``, ``1*game1+1*game3`` or ``game0,game3``: names the objective everywhere."""
        if self.multi:
            return ",".join(self.objectives)
        if len(self.weights) == 1 and next(iter(self.weights.values())) == 1.0:
            return next(iter(self.weights))
        return "+".join(f"{w:g}*{m}" for m, w in self.weights.items())

    @property
    def directions(self) -> list[str]:
        return [self.direction] * (len(self.objectives) if self.multi else 1)

    def values(self, metrics: dict[str, float | None]) -> list[float] | None:
        """The objective value(s) from val metrics keyed game0..mae; None if one is missing."""
        names = self.objectives if self.multi else tuple(self.weights)
        got = [metrics.get(name) for name in names]
        if any(v is None or not math.isfinite(v) for v in got):
            return None
        if self.multi:
            return [float(v) for v in got]
        return [sum(self.weights[name] * float(v) for name, v in zip(names, got, strict=True))]


def parse_tune(study: Study) -> TuneSpec:
    """Validate ``study.tune``; every problem is one StudyError line naming file and key."""
    where = f"{study.path} [tune]"
    table = study.tune
    if not table:
        raise StudyError(f"{study.path}: no [tune] table; add one (see studies/demo.toml)")
    for key in table:
        if key not in TUNE_KEYS:
            raise StudyError(f"{where}: {_unknown('key', key, list(TUNE_KEYS))}")
    variant = table.get("variant", "G")
    if not isinstance(variant, str) or variant not in study.variants:
        raise StudyError(f"{where}: variant {variant!r} is not a variant of this study; "
                          f"choose one of {', '.join(study.variants)}")
    weights, objectives = _objective(table, where)
    direction = table.get("direction", "minimize")
    if direction not in DIRECTIONS:
        raise StudyError(f"{where}: direction={direction!r} is not valid; "
                          f"choose one of {', '.join(DIRECTIONS)}")
    n_trials = table.get("n_trials", DEFAULT_N_TRIALS)
    if not isinstance(n_trials, int) or isinstance(n_trials, bool) or n_trials < 1:
        raise StudyError(f"{where}: n_trials={n_trials!r} is not valid; "
                          "it must be an integer >= 1")
    space = table.get("space")
    if not isinstance(space, dict) or not space:
        raise StudyError(f"{where}: no search space; add at least one [tune.space.FIELD] table")
    params = [_param(name, spec, f"{study.path} [tune.space.{name}]")
              for name, spec in space.items()]
    names = [p.name for p in params]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise StudyError(f"{where}: {twice[0]!r} is in the space twice")
    return TuneSpec(variant, weights, objectives, direction, n_trials, {p.name: p for p in params})


def check_configs(study: Study, spec: TuneSpec, extra: dict[str, Any]) -> RunConfig:
    """The tuned variant with ``extra`` (CLI options) makes a valid config, and so does every
    bound and choice of the space; returns the first."""
    base = study.config(spec.variant, 0, extra)
    for param in spec.space.values():
        for value in param.extremes():
            try:
                study.config(spec.variant, 0, {**extra, param.name: value})
            except StudyError as exc:
                reason = str(exc).split(": ", 1)[-1]
                raise StudyError(f"{study.path} [tune.space.{param.name}]: {param.name}="
                                 f"{value!r} does not make a valid config: {reason}") from None
    return base


def _objective(table: dict[str, Any], where: str) -> tuple[dict[str, float], tuple[str, ...]]:
    if "objective" in table and "objectives" in table:
        raise StudyError(f"{where}: give objective (one, or a weighted sum) or objectives "
                          "(multi-objective), not both")
    if "objectives" in table:
        names = table["objectives"]
        if not isinstance(names, list) or len(names) < 2 or len(set(map(str, names))) < len(names):
            raise StudyError(f"{where}: objectives must list two or more different metrics, "
                              f'e.g. objectives = ["game0", "game3"]')
        for name in names:
            _metric(name, where)
        return {name: 1.0 for name in names}, tuple(names)
    objective = table.get("objective", "game3")
    if isinstance(objective, str):
        return {_metric(objective, where): 1.0}, (objective,)
    if not isinstance(objective, dict) or not objective:
        raise StudyError(f"{where}: objective must be a metric name or a weighted sum such as "
                          "{game1 = 1.0, game3 = 1.0}")
    weights: dict[str, float] = {}
    for name, weight in objective.items():
        _metric(name, f"{where} objective")
        if isinstance(weight, bool) or not isinstance(weight, int | float) or weight < 0:
            raise StudyError(f"{where}: objective weight {name} = {weight!r} "
                              "must be a number >= 0")
        weights[name] = float(weight)
    if not any(weights.values()):
        raise StudyError(f"{where}: every objective weight is 0")
    return weights, ("+".join(weights),)


def _metric(name: Any, where: str) -> str:
    if name not in objective_metrics():
        raise StudyError(f"{where}: {_unknown('objective metric', name, objective_metrics())}")
    return name


def _param(name: str, spec: Any, where: str) -> Param:
    field = name.rpartition(".")[2]
    section = name.rpartition(".")[0]
    if field not in FIELD_SECTION or (section and section != FIELD_SECTION[field]):
        raise StudyError(f"{where}: {_unknown('config field', name, list(FIELD_SECTION))}")
    if field in PER_RUN_KEYS:
        raise StudyError(f"{where}: {field} cannot be tuned; it is chosen per run "
                         f"({PER_RUN_KEYS[field]})")
    if not isinstance(spec, dict):
        raise StudyError(f"{where}: must be a table with type = float|int|categorical")
    kind = spec.get("type")
    if kind not in PARAM_TYPES:
        shown = "missing" if kind is None else repr(kind)
        raise StudyError(f"{where}: type is {shown}; choose one of {', '.join(PARAM_TYPES)}")
    for key in spec:
        if key not in PARAM_KEYS[kind]:
            valid = list(PARAM_KEYS[kind])
            raise StudyError(f"{where}: {_unknown(f'key for type {kind}', key, valid)}")
    if kind == "categorical":
        return Param(field, kind, choices=_choices(spec.get("choices"), where))
    return _range(field, kind, spec, where)


def _range(field: str, kind: str, spec: dict[str, Any], where: str) -> Param:
    number = int if kind == "int" else (int, float)
    values = {}
    for key in ("low", "high", "step"):
        value = spec.get(key)
        if value is None and key != "step":
            raise StudyError(f"{where}: needs {key} = ... (a {kind} range)")
        if value is not None and (isinstance(value, bool) or not isinstance(value, number)):
            raise StudyError(f"{where}: {key}={value!r} is not a{'n' if kind == 'int' else ''} "
                             f"{kind}")
        if value is not None and not math.isfinite(value):
            raise StudyError(f"{where}: {key}={value!r} is not a finite number")
        values[key] = value
    low, high, step = values["low"], values["high"], values["step"]
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise StudyError(f"{where}: log={log!r} must be true or false")
    if low > high:
        raise StudyError(f"{where}: inverted range: low={low!r} > high={high!r}")
    if low == high:
        raise StudyError(f"{where}: empty range: low = high = {low!r}; use a categorical "
                          "with one choice or set the field in the variant instead")
    if log and low <= 0:
        raise StudyError(f"{where}: log range needs low > 0, got low={low!r}")
    if step is not None and (step <= 0 or log):
        why = "cannot be combined with log = true" if log else "must be > 0"
        raise StudyError(f"{where}: step={step!r} {why}")
    if kind == "float":
        low, high = float(low), float(high)
        step = float(step) if step is not None else None
    return Param(field, kind, low, high, log, step)


def _choices(choices: Any, where: str) -> tuple[Any, ...]:
    if not isinstance(choices, list) or not choices:
        raise StudyError(f"{where}: needs choices = [...] with at least one value")
    for choice in choices:
        if not isinstance(choice, bool | int | float | str):
            raise StudyError(f"{where}: choice {choice!r} is not a bool, number or string")
        if isinstance(choice, float) and not math.isfinite(choice):
            raise StudyError(f"{where}: choice {choice!r} is not a finite number")
    if len({(type(c), c) for c in choices}) != len(choices):
        raise StudyError(f"{where}: choices has a value twice: {choices!r}")
    return tuple(choices)


def _unknown(kind: str, name: Any, valid: Any) -> str:
    return unknown_choice(kind, name, list(valid))
