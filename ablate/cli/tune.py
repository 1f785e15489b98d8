"""``ablate tune``: a thin layer over ``ablate.tune.session`` (search, then confirm)."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from ablate.cli import options as opt
from ablate.cli.preflight import check_seed_count, check_worker_count, check_writable
from ablate.errors import TrainingError, UsageError
from ablate.launch.slots import Gpus, plan_slots
from ablate.study.study import Study, load_study

if TYPE_CHECKING:
    from ablate.run.hooks import RunOutcome
    from ablate.tune.options import TuneOptions
    from ablate.tune.session import TuneResult

out = Console()
err = Console(stderr=True)


@opt.with_run_options
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
    n_workers: Annotated[int | None, typer.Option(
        "--workers", "--n-workers", help="Worker processes on this machine sharing the "
        "storage; one GPU each when several are visible. Default: 1, or one per --gpus.")] = None,
    gpus: Gpus = None,
    confirm_seeds: Annotated[int, typer.Option(
        "--confirm-seeds", help="Then retrain the best params with seeds 0..N-1 as normal "
        "runs (variant <variant>-best), tested.")] = 0,
    save_dir: opt.SaveRoot = Path("runs"),
    worker: Annotated[bool, typer.Option(
        "--worker", hidden=True, help="Run as one of --n-workers' processes: no summary.")] = False,
    *,
    options: opt.RunOptions,
) -> None:
    """Search a study's \\[tune] space with Optuna on val; every trial is a recorded run.

    Each trial is a run of variant <variant>-tune in the runs database, pruned on its val
    objective epoch by epoch. Run again with the same study name to add trials.
    The best params, their value and the fANOVA importances are printed and stored in the study.

    Example: ablate tune studies/demo.toml --n-trials 20 --workers 2 --confirm-seeds 3
    """
    # Optuna, SQLAlchemy and torch: only when the command runs (see ablate.cli.app)
    from ablate.tune.options import TuneOptions
    from ablate.tune.session import search
    from ablate.tune.summary import print_summary

    if options.log:  # trials are logged in the runs database and Optuna's storage
        raise UsageError("--log is for `ablate run` and `ablate study run`; tuning trials "
                         "are recorded in the runs database (ablate report shows them)")
    check_worker_count(n_workers)
    check_seed_count(confirm_seeds, "--confirm-seeds")
    check_writable([(f"--save-dir {save_dir}", save_dir)])  # every trial's folder is in it
    slots = plan_slots(n_workers, gpus)
    study = load_study(study_file, options.plugins)
    tune_options = TuneOptions(
        n_trials=n_trials, timeout=timeout, storage=storage, study_name=study_name,
        pruner=pruner, sampler=sampler, n_workers=len(slots), confirm_seeds=confirm_seeds,
        gpus=tuple(s.gpu for s in slots if s.gpu is not None),
        save_root=save_dir, db=options.db, extra=options.overrides(), quiet=options.quiet,
        worker=worker)
    result = search(study, tune_options, err)
    if result is None:  # a worker: the parent prints the summary
        return
    print_summary(result.summary, out)
    if result.failed_workers:
        raise TrainingError(f"worker {', '.join(result.failed_workers)} stopped early; "
                          "see its error above")
    if confirm_seeds:
        _confirm(study, tune_options, result)


def _confirm(study: Study, options: TuneOptions, result: TuneResult) -> None:
    """--confirm-seeds: the best params as normal runs, and their test metrics."""
    from ablate.live.progress import reporter
    from ablate.tune.session import confirm

    with reporter(options.quiet, err) as shown:
        outcomes = confirm(study, options, result, shown)
    out.print(confirm_table(result, outcomes))
    failed = [o for o in outcomes if o.status != "done"]
    if failed:
        raise TrainingError(f"confirm runs not done: {', '.join(str(o.run_id) for o in failed)}")


def confirm_table(result: TuneResult, outcomes: list[RunOutcome]) -> Table:
    """The confirm runs' test metrics, with mean and sd over the seeds that finished."""
    from ablate.tune.objective import BEST_SUFFIX
    from ablate.tune.space import objective_metrics

    metrics = objective_metrics()
    table = Table(title=f"{result.spec.variant}{BEST_SUFFIX}: best params of trial "
                  f"{result.summary['best_trial']} on test, {len(outcomes)} seed(s)")
    for column in ("seed", "run", "status", *metrics):
        table.add_column(column, justify="right")
    for o in outcomes:
        table.add_row(str(o.seed), str(o.run_id), o.status,
                      *(f"{o.test[m]:.2f}" if o.test.get(m) is not None else "-"
                        for m in metrics))
    done = [o.test for o in outcomes if all(o.test.get(m) is not None for m in metrics)]
    if len(done) > 1:
        for row, stat in (("mean", statistics.mean), ("sd", statistics.stdev)):
            table.add_row(row, "", "", *(f"{stat(t[m] for t in done):.2f}" for m in metrics))
    return table
