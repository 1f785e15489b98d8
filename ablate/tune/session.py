"""Tuning as a library: ``search`` runs (or resumes) an Optuna search over a study's [tune]
space, in this process or in ``--n-workers`` processes; ``confirm`` retrains the best params.

Everything that can be checked is checked in ``prepare``, before any storage is opened, so
a bad table or option creates no study and no trial. A worker process gets the study's
record and its ``TuneOptions`` as JSON and calls ``search`` itself (``worker_main``).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from rich.console import Console

from ablate.db import RunStore
from ablate.errors import AblateError, TrainingError
from ablate.plugins import load_plugins
from ablate.run.hooks import Reporter, RunOutcome
from ablate.study.plan import check_runnable
from ablate.study.study import Study
from ablate.tune.objective import Objective, confirm_best
from ablate.tune.options import TuneOptions
from ablate.tune.progress import TrialProgress
from ablate.tune.search import Strategy, create_or_load, default_study_name, optimize
from ablate.tune.space import TuneSpec, check_configs, parse_tune
from ablate.tune.storage import StorageTarget, checked, open_storage, resolve_storage
from ablate.tune.summary import record_importances, summarize
from ablate.tune.workers import run_workers, shares

WORKER_ENTRY = "from ablate.tune.session import worker_main; worker_main()"


@dataclass(frozen=True)
class Setup:
    """A search checked and resolved, nothing opened yet."""

    spec: TuneSpec
    strategy: Strategy
    target: StorageTarget
    name: str  # the Optuna study's name
    total: int  # trials to add
    epochs: int  # of each trial: the pruner's budget


@dataclass(frozen=True)
class TuneResult:
    spec: TuneSpec
    name: str
    summary: dict[str, Any]  # see ablate.tune.summary.summarize
    worker_codes: tuple[int, ...] = ()

    @property
    def failed_workers(self) -> list[str]:
        return [f"{i} (exit code {code})" for i, code in enumerate(self.worker_codes) if code]


def prepare(study: Study, options: TuneOptions) -> Setup:
    options.check()
    spec = parse_tune(study)
    strategy = Strategy.choose(spec, options.sampler, options.pruner)
    base = check_configs(study, spec, options.extra)
    check_runnable(base)
    target = resolve_storage(options.storage, options.db, options.n_workers)
    if options.storage is not None:  # the runs database's own is checked when it is opened
        checked(target)
    name = options.study_name or default_study_name(study, spec)
    return Setup(spec, strategy, target, name, options.n_trials or spec.n_trials,
                 base.train.epochs)


def search(study: Study, options: TuneOptions, console: Console) -> TuneResult | None:
    """Add ``options.n_trials`` trials to the search; None in a worker process, else the
    summary (best params, importances, history), with the importances stored in the study."""
    setup = prepare(study, options)
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # trial lines and errors are ours
    with RunStore(options.db) as store:
        if not options.worker:
            store.record_study(study.name, study.to_record())
        found = create_or_load(open_storage(setup.target), setup.name, setup.spec,
                               setup.strategy.build_sampler(),
                               setup.strategy.build_pruner(setup.epochs))
        objective = Objective(store, study, setup.spec, setup.name, options.extra,
                              options.save_root)
        if options.worker:
            optimize(found, objective, setup.total, options.timeout,
                     max_trials=options.max_trials)
            return None
        n = len(found.get_trials(deepcopy=False))
        console.print(f"Optuna study {setup.name} in {setup.target.shown}: {n} trials so far, "
                      f"adding {setup.total} ({setup.strategy.sampler}, pruner "
                      f"{setup.strategy.pruner}, {options.n_workers} worker(s))")
        with TrialProgress(setup.total, setup.spec.label, console,
                           bars_on=not options.quiet) as progress:
            if options.n_workers > 1 or options.gpus:  # a chosen GPU: a process that sees it
                jobs = worker_jobs(study, options, setup, store)
                codes = run_workers(jobs, WORKER_ENTRY, found, progress.trial_done,
                                    options.gpus)
            else:
                objective.reporter = progress
                optimize(found, objective, setup.total, options.timeout, progress.trial_done)
                codes = []
        record_importances(found)
        return TuneResult(setup.spec, setup.name, summarize(found), tuple(codes))


def worker_jobs(study: Study, options: TuneOptions, setup: Setup,
                store: RunStore) -> list[dict[str, Any]]:
    """What each worker process is given: the study and its options, with the storage,
    database and folders resolved, and its share of the trials."""
    resolved = dataclasses.replace(
        options, storage=setup.target.url, study_name=setup.name, worker=True, quiet=True,
        n_workers=1, db=store.url.render_as_string(hide_password=False),
        save_root=options.save_root.resolve())
    return [{"study": study.to_record(),
             "options": dataclasses.replace(resolved, n_trials=share).to_json()}
            for share in shares(setup.total, options.n_workers)]


def worker_main() -> None:
    """Entry of a worker process: ``python -c WORKER_ENTRY JOB.json``."""
    job = json.loads(Path(sys.argv[1]).read_text())
    try:
        load_plugins(job["study"].get("plugins", ()))
        search(Study.from_record(job["study"]), TuneOptions.from_json(job["options"]),
               Console(stderr=True))
    except AblateError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        sys.exit(1)


def confirm(study: Study, options: TuneOptions, result: TuneResult,
            reporter: Reporter | None = None) -> list[RunOutcome]:
    """``--confirm-seeds``: the best params as normal runs, tested."""
    if result.summary["best_trial"] is None:
        raise TrainingError("no complete trial, so no best params to confirm")
    with RunStore(options.db) as store:
        return confirm_best(store, study, result.spec, result.name,
                            result.summary["best_params"], options, reporter)
