"""``ablate report`` (the results table against Broker-Modality) and ``ablate viz`` (the
debugging pictures of one run): thin layers over ``ablate.report`` and ``ablate.viz``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ablate.cli import options as opt
from ablate.errors import UsageError


def report_command(
    study: Annotated[str | None, typer.Argument(
        help="Study name in the database (its recorded definition gives the variant order "
        "and the base chain), or a study file. Default: the only study in the database.")] = None,
    db: opt.Db = None,
    format: Annotated[str, typer.Option(
        "--format", "-f", help="html, latex, markdown or csv.")] = "html",
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Output file. Default: reports/<study>.<html|tex|md|csv>.")] = None,
    split: Annotated[str, typer.Option("--split", help="test or val metrics.")] = "test",
    baselines: Annotated[str | None, typer.Option(
        "--baselines", help="Published rows to show, e.g. BM,IADM,MSDTrans, or all. "
        "BM is always shown.")] = None,
    baseline_file: Annotated[Path | None, typer.Option(
        "--baseline-file", help="Extra rows in the format of studies/baselines.toml.")] = None,
    sig_metric: Annotated[str, typer.Option(
        "--sig-metric", help="GAME level of the main table's significance columns "
        "(game0..game3); every level is in the paired-tests table.")] = "game3",
    dataset: Annotated[str | None, typer.Option(
        "--dataset", help="Whose published rows to show: rgbtcc or dronergbt. Default: the "
        "layout of the runs' data path.")] = None,
    correction: Annotated[str, typer.Option(
        "--correction", help="How the recipe-level p-values of every comparison shown are "
        "corrected together: holm (family-wise error) or bh (Benjamini-Hochberg, false "
        "discovery rate), e.g. --correction bh.")] = "holm",
    recipe_test: Annotated[str, typer.Option(
        "--recipe-test", help="The test over the seeds: t (paired t-test) or wilcoxon (exact "
        "signed-rank; needs 6 seeds to reach p < 0.05), e.g. --recipe-test wilcoxon.")] = "t",
    effect: Annotated[float, typer.Option(
        "--effect", help="The effect, as a share of the other variant's GAME, for which the "
        "report says how many seeds would detect it, e.g. --effect 0.05 (5%).")] = 0.05,
) -> None:
    """Render the results table: baselines, then each variant's GAME0-3 and RMSE.

    Per variant: its switches, mean +- std over seeds, the change from BM and
    from its parent in the chain, and the test between recipes against its parent
    and against A: paired over seeds (t-test, hierarchical bootstrap CI), p
    corrected over every comparison shown (Holm), the seed-level MDE and the seeds
    a 5% effect needs; the test over test images (these trained models differ)
    beside it. Fewer than 3 seeds: no recipe-level claim. HTML adds charts.

    Example: ablate report demo --format latex --baselines BM,IADM --dataset rgbtcc

    Example: ablate report demo --format markdown --correction bh --effect 0.1
    """
    from ablate.db import RunStore  # SQLAlchemy: only when a command runs (ablate.cli.app)
    from ablate.report import build_report, write_report
    from ablate.report.build import ReportOptions
    from ablate.report.render import FORMATS

    if format not in FORMATS:
        raise UsageError(f"--format {format!r} is not valid; choose one of {', '.join(FORMATS)}")
    with RunStore(db, readonly=True) as store:
        options = ReportOptions(
            split=split, baselines=baselines, sig_metric=sig_metric, dataset=dataset,
            baseline_file=str(baseline_file) if baseline_file else None,
            correction=correction, recipe_test=recipe_test, effect=effect)
        report = build_report(store, study, options)
    path = write_report(report, format, out)
    for note in report.notes:
        typer.echo(f"note: {note}")
    typer.echo(f"wrote {path}")


def viz_command(
    run_id: Annotated[int, typer.Argument(help="Run id from `ablate runs list`.")],
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Output folder. Default: reports/viz/run<ID>.")] = None,
    images: Annotated[int, typer.Option("--images", "-n", help="How many images.")] = 3,
    split: Annotated[str, typer.Option("--split", help="val or test images.")] = "val",
    db: opt.Db = None,
    data_path: Annotated[Path | None, typer.Option(
        "--data-path", help="Where the run's dataset is now, if it moved. Default: the "
        "run's recorded data path (or its synthetic data).")] = None,
) -> None:
    """Write the debugging pictures of one run for a few images.

    STN warp over the reference image, offset field, predicted density with its
    peaks and the labels, per-cell predicted vs true counts at GAME1-3, and the
    loss-term curves. Pictures of modules that are off are skipped with a note.

    Example: ablate viz 7 --out reports/viz/run7 --images 4 --split test
    """
    from ablate.db import RunStore
    from ablate.viz import default_dir, write_pictures

    if data_path is not None and not data_path.exists():
        raise UsageError(f"--data-path {data_path} does not exist")
    with RunStore(db, readonly=True) as store:
        result = write_pictures(store, run_id, out, images, split,
                                str(data_path) if data_path else None)
    for note in result.notes:
        typer.echo(f"skipped: {note}")
    typer.echo(f"wrote {len(result.written)} pictures to {out or default_dir(run_id)}")
