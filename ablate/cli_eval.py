"""``ablate eval`` (a saved checkpoint) and ``ablate check-eval`` (the oracle check)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ablate import cli_options as opt
from model.config import DataConfig
from model.data import load_splits
from model.engine import oracle_check
from model.engine.evaluate import evaluate_checkpoint

console = Console()
METRIC_COLUMNS = ("game0", "game1", "game2", "game3", "rmse", "mae")


def eval_command(
    checkpoint: Annotated[Path, typer.Argument(help="A best.pt or last.pt written by a run.")],
    data_path: opt.DataPath = None,
    split: Annotated[str, typer.Option("--split", help="train, val or test.")] = "test",
    device: opt.Device = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Evaluate a saved checkpoint with the official GAME protocol.

    Example: ablate eval runs/demo/G-seed0-1a2b3c4d/best.pt --split test
    """
    overrides = {k: v for k, v in {"data_path": data_path and str(data_path),
                                   "device": device}.items() if v}
    summary, _ = evaluate_checkpoint(str(checkpoint), split, overrides)
    if as_json:
        typer.echo(json.dumps(summary))
        return
    table = Table(title=f"{checkpoint} on {split} ({summary['n_images']} images)")
    for col in METRIC_COLUMNS:
        table.add_column(col.upper(), justify="right")
    table.add_row(*(f"{summary[c]:.3f}" for c in METRIC_COLUMNS))
    console.print(table)


def check_eval_command(
    data_path: opt.DataPath = None,
    split: Annotated[str, typer.Option("--split", help="train, val or test.")] = "val",
    stride: Annotated[int, typer.Option(
        "--stride", help="Sum-pool the ground truth to this stride (8: the protocol's "
        "resampling cost).")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """Score the ground truth itself, then shifted by a few pixels, before any training.

    Unshifted, every GAME level must be about 0 (else the evaluation has a coordinate bug);
    the shifted rows show what a misregistration costs in GAME1-3 while GAME0 stays put.

    Example: ablate check-eval --data-path ~/RGBT-CC --split val
    """
    if split not in ("train", "val", "test"):
        raise ValueError(f"--split {split!r} is not valid; choose one of train, val, test")
    cfg = DataConfig(data_path=str(data_path) if data_path else None)
    rows = oracle_check(getattr(load_splits(cfg), split), stride=stride)
    if as_json:
        typer.echo(json.dumps(rows))
        return
    table = Table(title=f"oracle check: ground-truth density at stride {stride} on {split}")
    table.add_column("shift px", justify="right")
    for col in METRIC_COLUMNS:
        table.add_column(col.upper(), justify="right")
    for row in rows:
        table.add_row(str(row["shift_px"]), *(f"{row[c]:.3f}" for c in METRIC_COLUMNS))
    console.print(table)
