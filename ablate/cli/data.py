"""``ablate data``: inspect a dataset on disk, or write the built-in synthetic one."""

from __future__ import annotations

import dataclasses
import json
import math
import re
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from ablate.errors import ConfigError, DataError, UsageError
from model.config import DataConfig

app = typer.Typer(help="Check a dataset or write the synthetic one.", no_args_is_help=True)
_D = DataConfig()  # the synth command's defaults are the built-in dataset's
# ``data synth`` option -> the DataConfig field it sets.
SYNTH_OPTIONS = {
    "n": "synth_n_train", "shift": "synth_shift", "rotation": "synth_rotation",
    "scale": "synth_scale", "local_warp": "synth_local_warp", "night": "synth_night_fraction",
    "min_people": "synth_min_people", "max_people": "synth_max_people",
    "height": "synth_height", "width": "synth_width", "seed": "synth_seed",
}


def _sizes(sizes: dict[str, int]) -> str:
    return ", ".join(f"{size} ({count})" for size, count in sizes.items()) or "-"


@app.command()
def check(
    path: Annotated[Path, typer.Argument(help="Dataset root in the RGBT-CC or DroneRGBT layout.")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object instead of tables.")
    ] = False,
) -> None:
    """Decode every pair and report per split: pairs, points, image sizes, points outside the
    image, and every problem found (missing partner, unreadable JPEG, bad label, size mismatch).

    Exits 0 when no problem was found and 1 when any was (they are listed, not raised).

    Example: ablate data check data/RGBT-CC --json
    """
    from model.data import check_dataset  # torch: only when a command runs (see ablate.cli.app)

    report = check_dataset(path)
    if as_json:
        typer.echo(json.dumps(report))
    else:
        console = Console()
        table = Table(title=f"{report['path']} ({report['format']})")
        for column in ("split", "pairs", "points", "mean points", "image sizes", "points outside"):
            table.add_column(
                column, justify="left" if column in ("split", "image sizes") else "right"
            )
        for split, stats in report["splits"].items():
            table.add_row(
                split,
                str(stats["pairs"]),
                str(stats["points"]),
                f"{stats['mean_points']:.1f}",
                _sizes(stats["image_sizes"]),
                str(stats["points_outside"]),
            )
        console.print(table)
        # Plain lines, never wrapped: each names a file a user may want to copy or grep.
        if report["problems"]:
            typer.echo(f"{len(report['problems'])} problem(s):")
            for problem in report["problems"]:
                typer.echo(f"  {problem}")
        else:
            typer.echo("no problems found")
    if report["problems"]:
        raise typer.Exit(code=1)


@app.command()
def synth(
    out: Annotated[Path, typer.Argument(help="Folder to write the RGBT-CC layout into.")],
    n: Annotated[
        int, typer.Option("--n", help="Train pairs; val gets n/4 and test n/3.")
    ] = _D.synth_n_train,
    shift: Annotated[
        float, typer.Option(help="Max RGB translation per axis in px (0 = registered).")
    ] = _D.synth_shift,
    rotation: Annotated[
        float, typer.Option(help="Max RGB rotation in degrees.")
    ] = _D.synth_rotation,
    scale: Annotated[float, typer.Option(help="Max relative RGB scale change.")] = _D.synth_scale,
    local_warp: Annotated[
        float, typer.Option(help="Amplitude in px of a smooth local displacement.")
    ] = _D.synth_local_warp,
    night: Annotated[
        float, typer.Option(help="Fraction of dark, noisy RGB images.")
    ] = _D.synth_night_fraction,
    min_people: Annotated[int, typer.Option(help="Fewest people per image.")] = _D.synth_min_people,
    max_people: Annotated[int, typer.Option(help="Most people per image.")] = _D.synth_max_people,
    height: Annotated[int, typer.Option(help="Image height in px.")] = _D.synth_height,
    width: Annotated[int, typer.Option(help="Image width in px.")] = _D.synth_width,
    seed: Annotated[
        int, typer.Option(help="Seed; the same seed writes the same images.")
    ] = _D.synth_seed,
    overwrite: Annotated[
        bool, typer.Option(help="Write into a folder that already has splits.")
    ] = False,
) -> None:
    """Write the built-in synthetic RGB-T crowds in the RGBT-CC layout (labels on the thermal
    image, RGB displaced from it by a random affine per pair).

    Example: ablate data synth data/synth --n 200 --shift 16 --rotation 5
    """
    options = {name: value for name, value in locals().items() if name in SYNTH_OPTIONS}
    if not overwrite and any((out / split).exists() for split in ("train", "val", "test")):
        raise DataError(f"{out} already holds train/, val/ or test/; pass --overwrite to replace")
    from model.data import synthetic_splits, write_rgbtcc

    splits = synthetic_splits(synth_config(options))
    written = write_rgbtcc(splits, out)
    points = {s.name: s.num_points for s in splits}
    for split, count in written.items():
        typer.echo(f"{out / split}: {count} pairs, {points[split]} points")
    typer.echo(
        f"wrote {sum(written.values())} pairs ({width}x{height}) in the RGBT-CC layout to {out}"
    )


def synth_config(options: dict[str, Any]) -> DataConfig:
    """The ``data synth`` options as the built-in dataset's config; a bad value is one line
    naming the option (``--shift nan``), not the config field behind it."""
    for name, value in options.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise UsageError(f"{_flag(name)} {value} is not valid; it must be a finite number")
    values = {SYNTH_OPTIONS[name]: value for name, value in options.items()}
    n = options["n"]
    values.update(synth_n_val=max(1, n // 4), synth_n_test=max(1, n // 3))
    try:
        return dataclasses.replace(_D, **values)
    except ConfigError as exc:
        message = str(exc)
        for name, field in SYNTH_OPTIONS.items():
            message = re.sub(rf"\b{field}\b", _flag(name), message)
        raise UsageError(message) from None


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")
