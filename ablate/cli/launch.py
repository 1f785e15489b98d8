"""``ablate launch slurm|status``: workers on a Slurm cluster, and what each job is doing."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ablate.cli import options as opt
from ablate.cli.study import seed_list
from ablate.study.study import load_study

if TYPE_CHECKING:
    from ablate.db import RunStore
    from ablate.study.study import Study
    from ablate.tune.options import TuneOptions
    from ablate.tune.session import Setup

app = typer.Typer(help="Launch workers on a Slurm cluster and follow them.",
                  no_args_is_help=True)

Folder = Annotated[Path, typer.Option(
    "--folder", help="Launch folder: submitit's logs and pickles, the launch records.")]


@app.command("slurm")
@opt.with_run_options
def launch_slurm(
    study_file: Annotated[Path, typer.Argument(help="Study file, e.g. studies/rgbtcc.toml.")],
    workers: Annotated[int, typer.Option("--workers", help="Array tasks (workers).")] = 1,
    gpus_per_worker: Annotated[int, typer.Option(
        "--gpus-per-worker", help="GPUs of each task.")] = 1,
    cpus_per_worker: Annotated[int | None, typer.Option(
        "--cpus-per-worker", help="CPU cores of each task. Default: the partition's.")] = None,
    partition: Annotated[str | None, typer.Option("--partition", help="Slurm partition.")] = None,
    time_limit: Annotated[str, typer.Option(
        "--time", help="Time limit of each task; it is requeued when reached.")] = "24:00:00",
    account: Annotated[str | None, typer.Option("--account", help="Slurm account.")] = None,
    variants: Annotated[str | None, typer.Option(
        "--variants", help="Comma-separated variants, e.g. A,C,G. Default: all.")] = None,
    seeds: Annotated[int | None, typer.Option("--seeds", help="Run seeds 0..N-1.")] = None,
    tune: Annotated[bool, typer.Option(
        "--tune", help="Launch tuning workers on the study's \\[tune] table instead.")] = False,
    n_trials: Annotated[int | None, typer.Option(
        "--n-trials", help="With --tune: trials in all. Default: n_trials of \\[tune].")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print the batch script; submit nothing.")] = False,
    save_dir: opt.SaveRoot = Path("runs"),
    folder: Folder = Path("slurm"),
    cluster: Annotated[str, typer.Option("--cluster", hidden=True,
                                         help="slurm, or local (submitit's local executor).")
                       ] = "slurm",
    *,
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
    from ablate.db import RunStore
    from ablate.db.connect import resolve_url
    from ablate.launch.checks import local_path_warning, refuse_sqlite
    from ablate.launch.slurm import LaunchRequest, batch_script, submit
    from ablate.launch.worker import make_job
    from ablate.study.plan import plan
    from ablate.tune.options import TuneOptions
    from ablate.tune.session import prepare

    request = LaunchRequest(workers, gpus_per_worker, cpus_per_worker, partition, time_limit,
                            account, folder, cluster)
    request.check()
    refuse_sqlite(resolve_url(options.db), workers, cluster == "slurm", options.db)
    study = load_study(study_file, options.plugins)
    request = dataclasses.replace(request, name=f"ablate-{study.name}")
    save_root = save_dir.expanduser().resolve()  # every node must find the same folder
    tune_options = TuneOptions(n_trials=n_trials, n_workers=workers, save_root=save_root,
                               db=options.db, extra=options.overrides(), quiet=True)
    specs = None if tune else plan(study, study.select(variants), seed_list(seeds, None),
                                   options.overrides(), save_root)
    setup = prepare(study, tune_options) if tune else None
    warning = local_path_warning(save_root)
    if warning and cluster == "slurm":
        typer.echo(warning, err=True)
    if dry_run:
        typer.echo(batch_script(request), nl=False)
        return
    with RunStore(options.db) as store:
        store.record_study(study.name, study.to_record())
        if setup is not None:
            jobs = tune_jobs(study, tune_options, setup, store)
        else:
            jobs = [make_job(study, specs, store)] * workers
    ids = submit(request, jobs, tune)
    typer.echo(f"submitted {len(ids)} worker(s) of {study.name}: {', '.join(ids)}; "
               f"follow them with `ablate launch status --folder {folder}`")


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


