"""``ablate eval`` (a saved checkpoint) and ``ablate check-eval`` (the oracle check)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from ablate.cli import options as opt
from ablate.errors import UsageError
from model.config import DataConfig

console = Console()


def _check_split(split: str) -> str:
    from model.engine.evaluate import SPLITS  # torch: only when a command runs (see ablate.cli.app)

    if split not in SPLITS:
        raise UsageError(f"--split {split!r} is not valid; choose one of {', '.join(SPLITS)}")
    return split


def _metric_table(title: str, rows: Sequence[dict[str, Any]],
                  first: tuple[str, str] | None = None) -> Table:
    """One column per registered metric, one row per result; ``first`` = (key, header) of a
    column before them."""
    from model.metrics import metrics

    table = Table(title=title)
    if first is not None:
        table.add_column(first[1], justify="right")
    for m in metrics():
        table.add_column(m.header, justify="right")
    for row in rows:
        lead = [str(row[first[0]])] if first is not None else []
        table.add_row(*lead, *(f"{row[m.name]:.3f}" for m in metrics()))
    return table


def eval_command(
    checkpoint: Annotated[Path, typer.Argument(help="A best.pt or last.pt written by a run.")],
    data_path: opt.DataPath = None,
    split: Annotated[str, typer.Option("--split", help="train, val or test.")] = "test",
    device: opt.Device = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    save_predictions: Annotated[Path | None, typer.Option(
        "--save-predictions", help="Also write one <id>.npy density map per image here, "
        "in the format `ablate diagnose` reads.")] = None,
) -> None:
    """Evaluate a saved checkpoint with the official GAME protocol.

    The network is rebuilt from the config stored in the checkpoint.

    Example: ablate eval runs/demo/G-seed0-1a2b3c4d/best.pt --split test --save-predictions preds
    """
    from model.engine.evaluate import evaluate_checkpoint

    overrides = {k: v for k, v in {"data_path": data_path and str(data_path),
                                   "device": device}.items() if v}
    summary, _ = evaluate_checkpoint(str(checkpoint), _check_split(split), overrides)
    if save_predictions is not None:
        from ablate.diagnose import write_predictions

        count = write_predictions(checkpoint, save_predictions, split, data_path, device)
        typer.echo(f"wrote {count} density maps to {save_predictions}", err=as_json)
    if as_json:
        typer.echo(json.dumps(summary))
        return
    console.print(_metric_table(f"{checkpoint} on {split} ({summary['n_images']} images)",
                                [summary]))


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
    if stride < 1:
        raise UsageError(f"--stride {stride} is not valid; it must be >= 1")
    from model.data import load_splits
    from model.engine import oracle_check

    cfg = DataConfig(data_path=str(data_path) if data_path else None)
    rows = oracle_check(getattr(load_splits(cfg), _check_split(split)), stride=stride)
    if as_json:
        typer.echo(json.dumps(rows))
        return
    title = f"oracle check: ground-truth density at stride {stride} on {split}"
    console.print(_metric_table(title, rows, first=("shift_px", "shift px")))
