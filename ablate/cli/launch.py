"""``ablate launch slurm|status``: workers on a Slurm cluster, and what each job is doing."""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ablate.cli import options as opt
from ablate.cli.study import seed_list
from ablate.launch.request import LaunchRequest
from ablate.study.study import load_study

if TYPE_CHECKING:
    from ablate.db import RunStore
    from ablate.study.study import Study
    from ablate.tune.options import TuneOptions
    from ablate.tune.session import Setup

app = typer.Typer(help="Launch workers on a Slurm cluster and follow them.",
                  no_args_is_help=True)

Folder = Annotated[Path, typer.Option(
    "--folder", help="Launch folder: submitit's logs and pickles, the launch records, e.g. "
    "--folder /shared/slurm.")]

# The options that make up a LaunchRequest, gathered by with_request.
REQUEST_OPTIONS: dict[str, tuple[Any, Any]] = {
    "workers": (Annotated[int, typer.Option(
        "--workers", help="Array tasks (workers), e.g. --workers 8.")], 1),
    "gpus_per_worker": (Annotated[int, typer.Option(
        "--gpus-per-worker", help="GPUs of each task, e.g. --gpus-per-worker 1.")], 1),
    "cpus_per_worker": (Annotated[int | None, typer.Option(
        "--cpus-per-worker",
        help="CPU cores of each task, e.g. --cpus-per-worker 8. Default: the partition's.")],
        None),
    "partition": (Annotated[str | None, typer.Option(
        "--partition", help="Slurm partition, e.g. --partition gpu.")], None),
    "time": (Annotated[str, typer.Option(
        "--time", help="Time limit of each task, e.g. --time 24:00:00; it is requeued when "
        "reached.")], "24:00:00"),
    "account": (Annotated[str | None, typer.Option(
        "--account", help="Slurm account, e.g. --account mylab.")], None),
    "tune": (Annotated[bool, typer.Option(
        "--tune", help="Launch tuning workers on the study's \\[tune] table instead.")], False),
    "n_trials": (Annotated[int | None, typer.Option(
        "--n-trials", help="With --tune: trials in all, e.g. --n-trials 64. Default: n_trials "
        "of \\[tune].")], None),
    "save_root": (opt.SaveRoot, Path("runs")),
    "folder": (Folder, Path("slurm")),
    "cluster": (Annotated[str, typer.Option(
        "--cluster", hidden=True, help="slurm, or local (submitit's local executor).")],
        "slurm"),
}


def with_request(command: Callable[..., Any]) -> Callable[..., Any]:
    """``command(..., request: LaunchRequest)`` as a command taking REQUEST_OPTIONS."""
    keyword = inspect.Parameter.KEYWORD_ONLY
    own = [p.replace(kind=keyword) for name, p in inspect.signature(
        command, eval_str=True).parameters.items() if name != "request"]
    added = [inspect.Parameter(name, keyword, annotation=hint, default=default)
             for name, (hint, default) in REQUEST_OPTIONS.items()]

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> Any:
        given = {name: kwargs.pop(name) for name in REQUEST_OPTIONS}
        return command(**kwargs, request=LaunchRequest(**given))

    wrapper.__signature__ = inspect.Signature(own + added)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in own + added}
    return wrapper


@app.command("slurm")
@opt.with_run_options
@with_request
def launch_slurm(
    study_file: Annotated[Path, typer.Argument(help="Study file, e.g. studies/rgbtcc.toml.")],
    variants: Annotated[str | None, typer.Option(
        "--variants", help="Comma-separated variants, e.g. A,C,G. Default: all.")] = None,
    seeds: Annotated[int | None, typer.Option("--seeds", help="Run seeds 0..N-1.")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print the batch script and the job array's runs; submit, download "
        "and open nothing (works without Slurm), e.g. --dry-run.")] = False,
    *,
    request: LaunchRequest,
    options: opt.RunOptions,
) -> None:
    """Submit a study's workers as one Slurm job array through submitit.

    Each task claims runs from the shared database (use PostgreSQL); a task preempted or out
    of time is requeued and resumes its run from the last checkpoint, and a run whose node
    died is taken over by another task after the heartbeat timeout.

    Example: ablate launch slurm studies/rgbtcc.toml --workers 8 --db
    postgresql+psycopg://me@dbhost/ablate --data-path /data/RGBT-CC --partition gpu
    """
    # submitit, SQLAlchemy, Optuna and torch: only when the command runs (see ablate.cli.app)
    from ablate.db.connect import resolve_url
    from ablate.launch.checks import local_path_warning, refuse_sqlite

    request.check()
    refuse_sqlite(resolve_url(options.db), request.workers, request.cluster == "slurm",
                  options.db)
    study = load_study(study_file, options.plugins)
    # Every node must find the same checkpoint folder.
    request = dataclasses.replace(request, name=f"ablate-{study.name}",
                                  save_root=request.save_root.expanduser().resolve())
    chosen, seed_values = study.select(variants), seed_list(seeds, None)
    if dry_run:
        from ablate.launch.dry_run import dry_run_text

        text = dry_run_text(request, study, chosen, seed_values, options.overrides())
        typer.echo(text, nl=False)
    warning = local_path_warning(request.save_root)
    if warning and request.cluster == "slurm":
        typer.echo(warning, err=True)
    if not dry_run:
        submit_study(request, study, chosen, seed_values, options)


def submit_study(request: LaunchRequest, study: Study, variants: list[str], seeds: list[int],
                 options: opt.RunOptions) -> None:
    """Plan (checking the device and the weight files), record the study, submit the array."""
    from ablate.db import RunStore
    from ablate.launch.slurm import submit
    from ablate.launch.worker import make_job
    from ablate.study.plan import plan
    from ablate.tune.options import TuneOptions
    from ablate.tune.session import prepare

    tune_options = TuneOptions(n_trials=request.n_trials, n_workers=request.workers,
                               save_root=request.save_root, db=options.db,
                               extra=options.overrides(), quiet=True)
    specs = None if request.tune else plan(study, variants, seeds, options.overrides(),
                                           request.save_root)
    setup = prepare(study, tune_options) if request.tune else None
    with RunStore(options.db) as store:
        store.record_study(study.name, study.to_record())
        if setup is not None:
            jobs = tune_jobs(study, tune_options, setup, store)
        else:
            jobs = [make_job(study, specs, store)] * request.workers
    ids = submit(request, jobs, request.tune)
    typer.echo(f"submitted {len(ids)} worker(s) of {study.name}: {', '.join(ids)}; "
               f"follow them with `ablate launch status --folder {request.folder}`")


def tune_jobs(study: Study, options: TuneOptions, setup: Setup,
              store: RunStore) -> list[dict[str, Any]]:
    """Each task may run every trial asked for, and all of them stop at the global cap: a task
    requeued, or one that finishes early, still leaves exactly that many trials."""
    from optuna.trial import TrialState

    from ablate.tune.search import create_or_load
    from ablate.tune.session import worker_jobs
    from ablate.tune.storage import open_storage

    strategy = setup.strategy
    found = create_or_load(open_storage(setup.target), setup.name, setup.spec,
                           strategy.build_sampler(), strategy.build_pruner(setup.epochs))
    counted = (TrialState.COMPLETE, TrialState.PRUNED)
    cap = len(found.get_trials(deepcopy=False, states=counted)) + setup.total
    jobs = worker_jobs(study, options, setup, store)
    for job in jobs:
        job["options"].update(n_trials=setup.total, max_trials=cap)
    return jobs


@app.command("status")
def launch_status(folder: Folder = Path("slurm"), db: opt.Db = None) -> None:
    """List the launched jobs, their state and the run each one is training.

    Example: ablate launch status --folder slurm --db postgresql+psycopg://me@dbhost/ablate
    """
    from ablate.db import RunStore
    from ablate.launch.status import status_table

    with RunStore(db, readonly=True) as store:
        status_table(folder, store)


