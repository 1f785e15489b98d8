"""``ablate study run|show``: the whole ablation of a study file, or its switch table."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from ablate.cli import options as opt
from ablate.cli.preflight import (
    check_seed_count,
    check_worker_count,
    check_writable,
    fit_workers,
    run_folders,
    runs_left,
)
from ablate.cli.tables import fitted
from ablate.errors import TrainingError, UsageError
from ablate.launch.slots import Gpus, Slot, Workers, plan_slots
from ablate.study.study import Study, load_study, variant_table
from ablate.study.table import condition_table

if TYPE_CHECKING:
    from ablate.run.hooks import RunOutcome
    from ablate.study.plan import RunSpec

study_app = typer.Typer(help="Run or inspect a study file (variants A-G).", no_args_is_help=True)
console = Console()


def train_and_summarise(study: Study, specs: list[RunSpec], options: opt.RunOptions,
                        slots: list[Slot] | None = None, save_dir: Path | None = None) -> None:
    """Check every folder the runs write, record the study, execute its planned runs (here,
    or in one worker process per slot, no more than runs left, when there are several or a
    GPU is chosen) and print the counts; failed runs are an error naming them."""
    # SQLAlchemy and torch: only when a study runs (see ablate.cli.app)
    from ablate.db import RunStore
    from ablate.launch.display import StudyWatch
    from ablate.launch.local import run_local
    from ablate.launch.worker import make_job
    from ablate.live.progress import reporter
    from ablate.run.execute import run_specs

    check_writable(run_folders(specs, save_dir, options.log_dir if options.log else None))
    live = options.live_logging()  # a bad --log fails here, before the database is opened
    with RunStore(options.db) as store:
        store.record_study(study.name, study.to_record())
        slots = fit_workers(slots, runs_left(store, specs))
        if slots and (len(slots) > 1 or slots[0].gpu is not None):
            watch = StudyWatch(store, specs, enabled=not options.quiet)
            job = {**make_job(study, specs, store), "log": list(options.log),
                   "log_dir": str(options.log_dir)}
            outcomes = run_local(job, slots, watch)
        else:
            with reporter(options.quiet) as shown:
                outcomes = run_specs(store, specs, shown, live)
    summarise(outcomes)


def next_step(study: Study, options: opt.RunOptions) -> None:
    typer.echo(f"Next: ablate report {study.name}"
               + (f" --db {options.db}" if options.db else ""))


def summarise(outcomes: list[RunOutcome]) -> None:
    trained = sum(o.trained for o in outcomes)
    skipped = sum(o.skipped for o in outcomes)
    failed = [o for o in outcomes if o.status == "failed"]
    typer.echo(f"{trained} trained, {skipped} skipped, {len(failed)} failed")
    if failed:
        names = ", ".join(f"{o.condition + '/' if o.condition else ''}{o.variant}/seed {o.seed} "
                          f"(run {o.run_id})" for o in failed)
        raise TrainingError(f"failed runs: {names}; first error: {failed[0].error}; "
                          "see `ablate runs show ID`")


def seed_list(seeds: int | None, seed: list[int] | None) -> list[int]:
    if seeds is not None and seed:
        raise UsageError("give either --seeds N or --seed S (repeatable), not both")
    if seeds is not None and seeds < 1:
        raise UsageError(f"--seeds {seeds} is not valid; it must be >= 1")
    if seeds is not None:
        check_seed_count(seeds)
    for value in seed or []:
        if value < 0:
            raise UsageError(f"--seed {value} is not valid; it must be >= 0")
    return list(range(seeds)) if seeds is not None else (seed or [0])


@study_app.command("run")
@opt.with_run_options
def study_run(
    study_file: Annotated[Path, typer.Argument(help="Study file, e.g. studies/demo.toml.")],
    variants: Annotated[list[str] | None, typer.Option(
        "--variants", "--variant",
        help="Variants, comma-separated or repeated, e.g. --variants A,C,G or --variant A. "
        "Default: all.")] = None,
    conditions: Annotated[list[str] | None, typer.Option(
        "--condition", "--conditions",
        help="Only these study conditions (repeatable or comma-separated), e.g. --condition "
        "misaligned. Default: all.")] = None,
    seeds: Annotated[str | None, typer.Option(
        "--seeds", help="Run seeds 0..N-1, or auto: start at 3 and add seeds in rounds until "
        "the seed-level GAME3 MDE of every comparison is <= --target-mde or --max-seeds is "
        "reached, e.g. --seeds auto --target-mde 0.5.")] = None,
    seed: Annotated[list[int] | None, typer.Option(
        "--seed", help="Run this seed (repeatable).")] = None,
    target_mde: Annotated[float | None, typer.Option(
        "--target-mde", help="With --seeds auto: the GAME3 difference every comparison must "
        "be able to detect (80% power, two-sided 5%, between recipes), e.g. 0.5.")] = None,
    max_seeds: Annotated[int, typer.Option(
        "--max-seeds", help="With --seeds auto: the most seeds to run, e.g. --max-seeds 8.")
    ] = 10,
    force: Annotated[bool, typer.Option("--force", help="Retrain runs already done.")] = False,
    save_dir: opt.SaveRoot = Path("runs"),
    workers: Workers = None,
    gpus: Gpus = None,
    *,
    options: opt.RunOptions,
) -> None:
    """Train every (variant, seed), in every condition, of a study not already done with
    the same config.

    Interrupted or crashed runs resume from their last checkpoint; several workers on one
    database split the work: --workers N starts N processes here, --gpus 0,1 one per GPU.
    Ctrl-C stops them all; the same command resumes.

    Example: ablate study run studies/demo.toml --variants A,G --seeds 3 --workers 2

    Example: ablate study run studies/paper.toml --data-path rgbtcc=/data/RGBT-CC
    --data-path drone=/data/DroneRGBT --seeds 3

    Example: ablate study run studies/demo.toml --seeds auto --target-mde 0.5 --max-seeds 8
    """
    from ablate.study.plan import PlanOptions, plan
    from ablate.study.sizing import START_SEEDS, check_sizing, parse_seeds, size_study

    count = parse_seeds(seeds)
    check_seed_count(max_seeds, "--max-seeds")
    sizing = check_sizing(count, target_mde, max_seeds, force)
    seeds_run = seed_list(START_SEEDS if sizing else count, seed)
    check_worker_count(workers)
    slots = plan_slots(workers, gpus)
    study = load_study(study_file, options.plugins)
    extra, per_condition = options.study_overrides(study)

    def train(seeds_run: list[int]) -> None:
        specs = plan(study, study.select(variants), seeds_run, extra, save_dir,
                     PlanOptions(force, conditions=conditions, condition_extra=per_condition))
        train_and_summarise(study, specs, options, slots, save_dir)

    if sizing is None:
        train(seeds_run)
    else:
        size_study(study.name, train, sizing, options.db, typer.echo)
    next_step(study, options)


@study_app.command("show")
def study_show(
    study_file: Annotated[Path, typer.Argument(help="Study file, e.g. studies/demo.toml.")],
    plugins: opt.Plugins = None,
) -> None:
    """Show a study's variants as a table of their switches, and its conditions.

    Example: ablate study show studies/paper.toml
    """
    study = load_study(study_file, tuple(plugins or ()))
    for table in fitted(variant_table(study), console):  # turned when wider than the terminal
        console.print(table)
    if study.conditions:
        console.print(condition_table(study))
