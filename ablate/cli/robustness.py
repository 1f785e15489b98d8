"""``ablate robustness``: re-evaluate trained runs with the moving image displaced."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ablate.cli import options as opt

console = Console()


def robustness_command(
    run_id: Annotated[int | None, typer.Argument(
        help="A done run's id from `ablate runs list` (or give --study).")] = None,
    study: Annotated[str | None, typer.Option(
        "--study", help="Re-evaluate every done run of this study instead.")] = None,
    shifts: Annotated[str, typer.Option(
        "--shifts", help="Comma-separated extra shifts in pixels, each >= 0; the moving "
        "image moves by this much right AND down.")] = "0,2,4,8,16",
    rotations: Annotated[str, typer.Option(
        "--rotations", help="Comma-separated extra rotations in degrees about the image "
        "centre (positive: clockwise on screen).")] = "0,2",
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
    device: opt.Device = None,
    db: opt.Db = None,
) -> None:
    """Re-evaluate trained runs on test with an extra displacement of the moving image.

    The moving image (RGB when the reference is thermal) of every test pair is shifted and
    rotated before the network sees it; the labels stay on the reference image. Shift 0,
    rotation 0 reproduces the run's recorded test metrics. Results are also merged into
    robustness.json next to each run's best.pt, which `ablate report` can plot.

    Example: ablate robustness --study demo --shifts 0,4,8,16 --rotations 0
    """
    from ablate.robustness import parse_values, run_robustness  # torch (see ablate.cli.app)
    from ablate.robustness.runner import KEYS

    shift_values = parse_values(shifts, "--shifts", minimum=0.0)
    rotation_values = parse_values(rotations, "--rotations")
    rows = run_robustness(db, run_id, study, shift_values, rotation_values, device)
    if as_json:
        typer.echo(json.dumps(rows))
        return
    table = Table(title="test metrics with the moving image displaced")
    for header in ("run", "variant", "shift px", "rotation deg", *(k.upper() for k in KEYS)):
        table.add_column(header, justify="right")
    for row in rows:
        table.add_row(str(row["run_id"]), row["variant"], f"{row['shift']:g}",
                      f"{row['rotation']:g}", *(f"{row[k]:.3f}" for k in KEYS))
    console.print(table)
