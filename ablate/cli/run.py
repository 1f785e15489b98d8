"""``ablate run``: train one variant of a study (``ablate study run|show`` is ``cli_study``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ablate.cli import options as opt
from ablate.cli.study import next_step, study_app, train_and_summarise
from ablate.paths import STUDIES_DIR
from ablate.study.study import load_study

__all__ = ["ENHANCED_LOSS", "STUDIES", "run", "study_app"]

STUDIES = STUDIES_DIR
ENHANCED_LOSS = {"local_count": 0.2, "feat_l1": 0.1, "tv": 0.05}  # the plan's weights


@opt.with_run_options
def run(
    study_file: Annotated[Path | None, typer.Option(
        "--study", help="Study file. Default: studies/rgbtcc.toml with --data-path, "
        "else studies/demo.toml.")] = None,
    variant: Annotated[str, typer.Option("--variant", help="Variant to train.")] = "B",
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    save_dir: Annotated[Path | None, typer.Option(
        "--save-dir",
        help="Checkpoint directory of this run. Default: runs/<study>/<run>.")] = None,
    enhanced: Annotated[bool, typer.Option(
        "--enable-enhanced-loss",
        help="Add the local-count (0.2), feature-L1 (0.1) and TV (0.05) loss terms.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Retrain even if already done.")] = False,
    *,
    options: opt.RunOptions,
) -> None:
    """Train one variant of a study and record it in the runs database.

    Example: ablate run --data-path ~/RGBT-CC --batch-size 8 --lr 1e-4 --epochs 200
    --save-dir ./Results/shared_enhanced --enable-enhanced-loss --downsample-ratio 32
    """
    from ablate.study.plan import PlanOptions, plan

    if study_file is None:
        study_file = STUDIES / ("rgbtcc.toml" if options.data_path is not None else "demo.toml")
    study = load_study(study_file, options.plugins)
    extra = options.overrides()
    if enhanced:
        extra = {**ENHANCED_LOSS, **extra}
    variants = study.select(variant)[:1]
    specs = plan(study, variants, [seed], extra, Path("runs"),
                 PlanOptions(force, exact_save_dir=save_dir))
    train_and_summarise(study, specs, options, save_dir=save_dir)
    next_step(study, options)
