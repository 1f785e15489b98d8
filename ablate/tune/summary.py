"""The result of a search: best params and value, fANOVA importances, the trial history.

The importances are stored in the Optuna study itself (user attr ``ablate_importances``), so
they travel with every storage, PostgreSQL included; ``tune_summary(storage_url, name)`` is what
the report builder reads. For a multi-objective search the "best" trial is the Pareto-optimal
one with the best sum of objectives, and the importances are the mean of each objective's.
"""

from __future__ import annotations

import importlib.util
import math
from typing import Any

import numpy as np
import optuna
from optuna.importance import FanovaImportanceEvaluator
from optuna.trial import FrozenTrial, TrialState
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ablate.errors import DatabaseError
from ablate.tune.search import OBJECTIVE_ATTR
from ablate.tune.storage import open_storage, resolve_storage

IMPORTANCE_ATTR = "ablate_importances"
EVALUATOR = "FanovaImportanceEvaluator"
# fANOVA fits a random forest to the trials: below this many, or on objective values that
# hardly differ, its shares describe the forest's noise, not the parameters.
MIN_TRIALS_FOR_IMPORTANCE = 10
MIN_OBJECTIVE_CV = 0.01  # sd / |mean| of an objective across the complete trials


def tune_summary(storage_url: str, study_name: str) -> dict[str, Any]:
    """The summary of the Optuna study ``study_name`` in ``storage_url`` (a URL, or a
    ``.journal`` path): keys best_params, best_value, importances, history and more."""
    target = resolve_storage(storage_url, None)
    storage = open_storage(target, heartbeat=False)
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        names = ", ".join(s.study_name for s in optuna.get_all_study_summaries(storage)) or "none"
        raise DatabaseError(f"no Optuna study {study_name!r} in {target.shown} "
                          f"(studies there: {names})") from None
    return summarize(study)


def summarize(study: optuna.Study) -> dict[str, Any]:
    """Everything about ``study`` the CLI prints and reports show; importances are the stored
    ones when they were computed on the current complete trials, else computed now."""
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    stored = study.user_attrs.get(IMPORTANCE_ATTR) or {}
    if stored.get("n_complete") != len(complete):
        stored = importances(study, complete)
    best = _best(study, complete)
    multi = len(study.directions) > 1
    counts: dict[str, int] = {}
    for trial in trials:
        counts[trial.state.name] = counts.get(trial.state.name, 0) + 1
    return {
        "study_name": study.study_name,
        "objective": (study.user_attrs.get(OBJECTIVE_ATTR) or {}).get("objective"),
        "directions": [d.name.lower() for d in study.directions],
        "best_trial": best.number if best else None,
        "best_run_id": best.user_attrs.get("run_id") if best else None,
        "best_params": dict(best.params) if best else {},
        "best_value": (list(best.values) if multi else best.value) if best else None,
        "pareto": [_brief(t) for t in study.best_trials] if multi and complete else None,
        "importances": stored["importances"],
        "importance_evaluator": EVALUATOR,
        "importance_note": stored["note"],
        "importance_warning": stored.get("warning"),  # absent from studies tuned before
        "history": [(t.number, _value(t, multi), t.state.name) for t in trials],
        "counts": counts,
    }


def record_importances(study: optuna.Study) -> dict[str, Any]:
    """Compute fANOVA importances on the complete trials and store them in the study."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    result = importances(study, complete)
    study.set_user_attr(IMPORTANCE_ATTR, result)
    return result


def importances(study: optuna.Study, complete: list[FrozenTrial]) -> dict[str, Any]:
    """``{"evaluator", "n_complete", "importances": {param: share}, "note": why-empty-or-None}``."""
    result: dict[str, Any] = {"evaluator": EVALUATOR, "n_complete": len(complete),
                              "importances": {}, "note": None, "warning": None}
    if len(complete) < 2:
        result["note"] = (f"{EVALUATOR} needs at least 2 complete trials; "
                          f"{len(complete)} complete so far")
        return result
    result["warning"] = alike_warning(complete, len(study.directions))
    if importlib.util.find_spec("sklearn") is None:
        result["note"] = f"{EVALUATOR} needs scikit-learn: pip install scikit-learn"
        return result
    n_objectives = len(study.directions)
    per_objective = []
    try:
        for i in range(n_objectives):
            per_objective.append(optuna.importance.get_param_importances(
                study, evaluator=FanovaImportanceEvaluator(seed=0),
                target=(lambda t, i=i: t.values[i]) if n_objectives > 1 else None))
    except (RuntimeError, ValueError) as exc:
        result["note"] = f"{EVALUATOR} could not run: {exc}"
        return result
    names = sorted({name for imp in per_objective for name in imp})
    mean = {name: sum(imp.get(name, 0.0) for imp in per_objective) / n_objectives
            for name in names}
    if not all(math.isfinite(v) for v in mean.values()):
        result["note"] = f"{EVALUATOR} found no variation to explain (all values equal?)"
        return result
    result["importances"] = dict(sorted(mean.items(), key=lambda kv: -kv[1]))
    return result


def alike_warning(complete: list[FrozenTrial], n_objectives: int) -> str | None:
    """Why importances over ``complete`` (two or more trials) mean little, or None: too few
    trials, or an objective whose values hardly differ between them."""
    n = len(complete)
    if n < MIN_TRIALS_FOR_IMPORTANCE:
        return (f"only {n} complete trials: importances need about "
                f"{MIN_TRIALS_FOR_IMPORTANCE} to tell the parameters apart; add trials "
                "(--n-trials) before reading them")
    for i in range(n_objectives):
        values = np.array([t.values[i] for t in complete], dtype=float)
        sd, mean = float(values.std(ddof=1)), float(values.mean())
        if sd <= MIN_OBJECTIVE_CV * abs(mean):
            which = f" {i + 1}" if n_objectives > 1 else ""
            return (f"the objective{which} hardly varies over the {n} complete trials (sd "
                    f"{sd:.3g} around {mean:.4g}, under {MIN_OBJECTIVE_CV:.0%}): the "
                    "importances explain noise; widen the [tune] space or check that trials "
                    "train")
    return None


def print_summary(summary: dict[str, Any], console: Console) -> None:
    counts = ", ".join(f"{n} {state.lower()}" for state, n in sorted(summary["counts"].items()))
    console.print(f"[bold]{summary['study_name']}[/bold]: {summary['objective']} "
                  f"({', '.join(summary['directions'])}); trials: {counts or 'none'}")
    if summary["best_trial"] is None:
        console.print("no complete trial yet: no best params")
    else:
        console.print(f"best: trial {summary['best_trial']} (run {summary['best_run_id']}), "
                      f"val {summary['objective']} = {_fmt(summary['best_value'])}")
        table = Table()
        table.add_column("param")
        table.add_column("value", justify="right")
        for name, value in summary["best_params"].items():
            table.add_row(name, _fmt(value))
        console.print(table)
    if summary["importances"]:
        console.print(f"parameter importances ({summary['importance_evaluator']}):")
        table = Table()
        table.add_column("param")
        table.add_column("importance", justify="right")
        for name, value in summary["importances"].items():
            table.add_row(name, f"{value:.3f}")
        console.print(table)
        if summary.get("importance_warning"):
            console.print(f"[yellow]warning:[/yellow] {escape(summary['importance_warning'])}",
                          highlight=False)
    else:
        console.print(f"no parameter importances: {summary['importance_note']}")


def _best(study: optuna.Study, complete: list[FrozenTrial]) -> FrozenTrial | None:
    if not complete:
        return None
    if len(study.directions) == 1:
        return study.best_trial
    sign = 1 if study.directions[0] == optuna.study.StudyDirection.MINIMIZE else -1
    return min(study.best_trials, key=lambda t: (sign * sum(t.values), t.number))


def _brief(trial: FrozenTrial) -> dict[str, Any]:
    return {"number": trial.number, "values": list(trial.values), "params": dict(trial.params),
            "run_id": trial.user_attrs.get("run_id")}


def _value(trial: FrozenTrial, multi: bool) -> float | list[float] | None:
    if trial.values is None:
        return None
    return list(trial.values) if multi else trial.values[0]


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return ", ".join(_fmt(v) for v in value)
    return str(value)
