"""``ablate run`` (one variant) and ``ablate study run|show`` (the whole ablation)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ablate import cli_options as opt
from ablate.db import RunStore
from ablate.errors import AblateError
from ablate.paths import STUDIES_DIR
from ablate.progress import RichReporter
from ablate.runner import Reporter, RunOutcome, run_one, run_study
from ablate.study import Study, load_study, variant_table
from model.backbones import pretrained_path
from model.engine.device import resolve_device

STUDIES = STUDIES_DIR
ENHANCED_LOSS = {"local_count": 0.2, "feat_l1": 0.1, "tv": 0.05}  # the plan's weights

study_app = typer.Typer(help="Run or inspect a study file (variants A-G).", no_args_is_help=True)
console = Console()


def _reporter(quiet: bool):
    return contextlib.nullcontext(Reporter()) if quiet else RichReporter()


def _validate(study: Study, variants: list[str], seeds: list[int], extra: dict) -> None:
    """Resolve every config before the database is touched, so bad input changes nothing."""
    for variant in variants:
        for seed in seeds:
            cfg = study.config(variant, seed, extra)
            resolve_device(cfg.train.device)
            pretrained_path(cfg.model.backbone, cfg.model.pretrained)


def _summarise(outcomes: list[RunOutcome]) -> None:
    done = sum(o.status == "done" and not o.action.startswith("skip") for o in outcomes)
    skipped = sum(o.action.startswith("skip") for o in outcomes)
    failed = [o for o in outcomes if o.status == "failed"]
    typer.echo(f"{done} trained, {skipped} skipped, {len(failed)} failed")
    if failed:
        names = ", ".join(f"{o.variant}/seed {o.seed} (run {o.run_id})" for o in failed)
        raise AblateError(f"failed runs: {names}; first error: {failed[0].error}; "
                          "see `ablate runs show ID`")


def run(
    study_file: Annotated[Path | None, typer.Option(
        "--study", help="Study file. Default: studies/rgbtcc.toml with --data-path, "
        "else studies/demo.toml.")] = None,
    variant: Annotated[str, typer.Option("--variant", help="Variant to train.")] = "B",
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    data_path: opt.DataPath = None,
    epochs: opt.Epochs = None,
    batch_size: opt.BatchSize = None,
    lr: opt.Lr = None,
    backbone_lr: opt.BackboneLr = None,
    save_dir: Annotated[Path | None, typer.Option(
        "--save-dir",
        help="Checkpoint directory of this run. Default: runs/<study>/<run>.")] = None,
    downsample_ratio: opt.Ratio = None,
    device: opt.Device = None,
    db: opt.Db = None,
    sets: opt.Sets = None,
    enhanced: Annotated[bool, typer.Option(
        "--enable-enhanced-loss",
        help="Add the local-count (0.2), feature-L1 (0.1) and TV (0.05) loss terms.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Retrain even if already done.")] = False,
    quiet: opt.Quiet = False,
) -> None:
    """Train one variant of a study and record it in the runs database.

    Example: ablate run --data-path ~/RGBT-CC --batch-size 8 --lr 1e-4 --epochs 200
    --save-dir ./Results/shared_enhanced --enable-enhanced-loss --downsample-ratio 32
    """
    if study_file is None:
        study_file = STUDIES / ("rgbtcc.toml" if data_path is not None else "demo.toml")
    study = load_study(study_file)
    extra = opt.common_overrides(data_path, epochs, batch_size, lr, backbone_lr,
                                 downsample_ratio, device, sets)
    if enhanced:
        extra = {**ENHANCED_LOSS, **extra}
    variant = study.select(variant)[0]
    _validate(study, [variant], [seed], extra)
    if force and save_dir is not None and (save_dir / "last.pt").exists():
        raise AblateError(f"--force: {save_dir} holds a last.pt that the rerun would resume "
                          "instead of retraining; give another --save-dir or delete it")
    with RunStore(db) as store, _reporter(quiet) as reporter:
        outcome = run_one(store, study, variant, seed, extra, Path("runs"), force, reporter,
                          exact_save_dir=save_dir)
        if outcome.action.startswith("skip"):
            reporter.run_done(outcome)
    _summarise([outcome])


@study_app.command("run")
def study_run(
    study_file: Annotated[Path, typer.Argument(help="Study file, e.g. studies/demo.toml.")],
    variants: Annotated[str | None, typer.Option(
        "--variants", help="Comma-separated variants, e.g. A,C,G. Default: all.")] = None,
    seeds: Annotated[int | None, typer.Option(
        "--seeds", help="Run seeds 0..N-1.")] = None,
    seed: Annotated[list[int] | None, typer.Option(
        "--seed", help="Run this seed (repeatable).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Retrain runs already done.")] = False,
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
) -> None:
    """Train every (variant, seed) of a study not already done with the same config.

    Interrupted or crashed runs resume from their last checkpoint; several workers on one
    database split the work.

    Example: ablate study run studies/demo.toml --variants A,G --seeds 3
    """
    if seeds is not None and seed:
        raise AblateError("give either --seeds N or --seed S (repeatable), not both")
    if seeds is not None and seeds < 1:
        raise AblateError(f"--seeds {seeds} is not valid; it must be >= 1")
    seed_list = list(range(seeds)) if seeds is not None else (seed or [0])
    study = load_study(study_file)
    names = study.select(variants)
    extra = opt.common_overrides(data_path, epochs, batch_size, lr, backbone_lr,
                                 downsample_ratio, device, sets)
    _validate(study, names, seed_list, extra)
    with RunStore(db) as store, _reporter(quiet) as reporter:
        outcomes = run_study(store, study, names, seed_list, extra, save_dir, force, reporter)
    _summarise(outcomes)


@study_app.command("show")
def study_show(
    study_file: Annotated[Path, typer.Argument(help="Study file, e.g. studies/demo.toml.")],
) -> None:
    """Show a study's variants as a table of their switches.

    Example: ablate study show studies/demo.toml
    """
    console.print(variant_table(load_study(study_file)))  # titled with name and description
