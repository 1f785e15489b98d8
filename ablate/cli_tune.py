"""``ablate tune``: Optuna search over a study's [tune] space, every trial a recorded run."""

from __future__ import annotations

import contextlib
import statistics
from pathlib import Path
from typing import Annotated, Any

import optuna
import typer
from rich.console import Console
from rich.table import Table

from ablate import cli_options as opt
from ablate.db import METRICS, RunStore
from ablate.errors import AblateError
from ablate.progress import RichReporter
from ablate.runner import Reporter
from ablate.study import Study, load_study
from ablate.tune.objective import BEST_SUFFIX, Objective, confirm_best
from ablate.tune.progress import TrialProgress
from ablate.tune.search import Strategy, create_or_load, default_study_name, optimize
from ablate.tune.space import TuneSpec, check_configs, parse_tune
from ablate.tune.storage import StorageTarget, open_storage, resolve_storage
from ablate.tune.summary import print_summary, record_importances, summarize
from ablate.tune.workers import run_workers, shares, worker_command
from model.engine.device import resolve_device

out = Console()
err = Console(stderr=True)


def tune_command(
    study_file: Annotated[Path, typer.Argument(
        help="Study file with a \\[tune] table, e.g. studies/demo.toml.")],
    n_trials: Annotated[int | None, typer.Option(
        "--n-trials", help="Trials to add to the search. Default: n_trials of \\[tune].")] = None,
    timeout: Annotated[float | None, typer.Option(
        "--timeout", help="Start no new trial after this many seconds.")] = None,
    storage: Annotated[str | None, typer.Option(
        "--storage", help="Optuna storage: sqlite:///FILE, postgresql+psycopg://USER:PW@HOST/DB "
        "or FILE.journal. Default: the runs database, or a journal file next to it with "
        "--n-workers > 1.")] = None,
    study_name: Annotated[str | None, typer.Option(
        "--study-name", help="Optuna study name; an existing one is resumed and grows. "
        "Default: <study>-<variant>-tune.")] = None,
    pruner: Annotated[str | None, typer.Option(
        "--pruner", help="median, hyperband or none. Default: median; none for "
        "multi-objective.")] = None,
    sampler: Annotated[str | None, typer.Option(
        "--sampler", help="tpe, random or cmaes. Default: tpe; NSGA-II for "
        "multi-objective.")] = None,
    n_workers: Annotated[int, typer.Option(
        "--n-workers", help="Worker processes on this machine sharing the storage; one GPU "
        "each when several are visible.")] = 1,
    confirm_seeds: Annotated[int, typer.Option(
        "--confirm-seeds", help="Then retrain the best params with seeds 0..N-1 as normal "
        "runs (variant <variant>-best), tested.")] = 0,
    data_path: opt.DataPath = None,
    epochs: opt.Epochs = None,
    batch_size: opt.BatchSize = None,
    lr: opt.Lr = None,
    backbone_lr: opt.BackboneLr = None,
    save_dir: opt.SaveRoot = Path("runs"),
    downsample_ratio: opt.Ratio = None,
    device: opt.Device = None,
    db: opt.Db = None,
    sets: opt.Sets = None,
    quiet: opt.Quiet = False,
    worker: Annotated[bool, typer.Option(
        "--worker", hidden=True, help="Run as one of --n-workers' processes: no summary.")] = False,
) -> None:
    """Search a study's \\[tune] space with Optuna on val; every trial is a recorded run.

    Each trial is a run of variant <variant>-tune in the runs database, pruned on its val
    objective epoch by epoch. Run again with the same study name to add trials.
    The best params, their value and the fANOVA importances are printed and stored in the study.

    Example: ablate tune studies/demo.toml --n-trials 20 --n-workers 2 --confirm-seeds 3
    """
    _check_counts(n_trials, timeout, n_workers, confirm_seeds)
    study = load_study(study_file)
    spec = parse_tune(study)
    strategy = Strategy.choose(spec, sampler, pruner)
    extra = opt.common_overrides(data_path, epochs, batch_size, lr, backbone_lr,
                                 downsample_ratio, device, sets)
    check_configs(study, spec, extra)
    cfg = study.config(spec.variant, 0, extra)
    resolve_device(cfg.train.device)
    target = resolve_storage(storage, db, n_workers)
    name = study_name or default_study_name(study, spec)
    total = n_trials or spec.n_trials
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # trial lines and errors are ours
    with RunStore(db) as store:
        search = create_or_load(open_storage(target), name, spec, strategy.build_sampler(),
                                strategy.build_pruner(cfg.train.epochs))
        objective = Objective(store, study, spec, name, extra, save_dir)
        if worker:
            optimize(search, objective, total, timeout)
            return
        done = len(search.get_trials(deepcopy=False))
        err.print(f"Optuna study {name} in {target.shown}: {done} trials so far, adding {total} "
                  f"({strategy.sampler}, pruner {strategy.pruner}, {n_workers} worker(s))")
        with TrialProgress(total, spec.label, err, bars=not quiet) as progress:
            if n_workers > 1:
                args = _worker_args(target, name, store, save_dir, sampler, pruner, timeout, extra)
                commands = [worker_command(study_file, args, share)
                            for share in shares(total, n_workers)]
                codes = run_workers(commands, search, progress.trial_done)
            else:
                objective.reporter = progress
                optimize(search, objective, total, timeout, on_trial=progress.trial_done)
                codes = []
        record_importances(search)
        summary = summarize(search)
        print_summary(summary, out)
        bad = [f"{i} (exit code {code})" for i, code in enumerate(codes) if code != 0]
        if bad:
            raise AblateError(f"worker {', '.join(bad)} stopped early; see its error above")
        if confirm_seeds:
            _confirm(store, study, spec, name, summary, extra, confirm_seeds, save_dir, quiet)


def _check_counts(n_trials: int | None, timeout: float | None, n_workers: int,
                  confirm_seeds: int) -> None:
    if n_trials is not None and n_trials < 1:
        raise AblateError(f"--n-trials {n_trials} is not valid; it must be >= 1")
    if timeout is not None and timeout <= 0:
        raise AblateError(f"--timeout {timeout:g} is not valid; it must be > 0 seconds")
    if n_workers < 1:
        raise AblateError(f"--n-workers {n_workers} is not valid; it must be >= 1")
    if confirm_seeds < 0:
        raise AblateError(f"--confirm-seeds {confirm_seeds} is not valid; it must be >= 0")


def _worker_args(target: StorageTarget, name: str, store: RunStore, save_dir: Path,
                 sampler: str | None, pruner: str | None, timeout: float | None,
                 extra: dict[str, Any]) -> list[str]:
    """The options every worker gets: the resolved storage and database, the user's choices."""
    args = ["--storage", target.url, "--study-name", name, "--save-dir", str(save_dir.resolve()),
            "--db", store.url.render_as_string(hide_password=False), "--quiet", "--worker"]
    for option, value in (("--sampler", sampler), ("--pruner", pruner), ("--timeout", timeout)):
        if value is not None:
            args += [option, str(value)]
    for key, value in extra.items():
        args += ["--set", f"{key}={value}"]
    return args


def _confirm(store: RunStore, study: Study, spec: TuneSpec, name: str, summary: dict[str, Any],
             extra: dict[str, Any], seeds: int, save_dir: Path, quiet: bool) -> None:
    """--confirm-seeds: the best params as normal runs, and their test metrics."""
    if summary["best_trial"] is None:
        raise AblateError("no complete trial, so no best params to confirm")
    display = contextlib.nullcontext(Reporter()) if quiet else RichReporter(err)
    with display as shown:
        outcomes = confirm_best(store, study, spec, name, summary["best_params"], extra, seeds,
                                save_dir, shown)
    table = Table(title=f"{spec.variant}{BEST_SUFFIX}: best params of trial "
                  f"{summary['best_trial']} on test, {seeds} seed(s)")
    metrics = METRICS
    for column in ("seed", "run", "status", *metrics):
        table.add_column(column, justify="right")
    tests = []
    for o in outcomes:
        test = o.test or _test_of(store, o.run_id)
        tests.append(test)
        table.add_row(str(o.seed), str(o.run_id), o.status,
                      *(f"{test[m]:.2f}" if test.get(m) is not None else "-" for m in metrics))
    done = [t for t in tests if all(t.get(m) is not None for m in metrics)]
    if len(done) > 1:
        for row, stat in (("mean", statistics.mean), ("sd", statistics.stdev)):
            table.add_row(row, "", "", *(f"{stat(t[m] for t in done):.2f}" for m in metrics))
    out.print(table)
    failed = [o for o in outcomes if o.status != "done"]
    if failed:
        raise AblateError(f"confirm runs not done: {', '.join(str(o.run_id) for o in failed)}")


def _test_of(store: RunStore, run_id: int | None) -> dict[str, float | None]:
    """A skipped (already done) run's test metrics from the database."""
    if run_id is None:
        return {}
    run = store.get_run(run_id)
    return {m: getattr(run, f"test_{m}") for m in METRICS}
