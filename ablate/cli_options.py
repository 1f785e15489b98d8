"""Options shared by ``ablate run``, ``ablate study run`` and ``ablate tune``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from model.data import detect_format

DataPath = Annotated[Path | None, typer.Option(
    "--data-path", help="RGBT-CC or DroneRGBT root. Default: the built-in synthetic data.")]
Epochs = Annotated[int | None, typer.Option("--epochs", help="Training epochs.")]
BatchSize = Annotated[int | None, typer.Option("--batch-size", help="Pairs per training step.")]
Lr = Annotated[float | None, typer.Option("--lr", help="Learning rate of heads and alignment.")]
BackboneLr = Annotated[float | None, typer.Option("--backbone-lr",
                                                  help="Learning rate of the backbone.")]
SaveRoot = Annotated[Path, typer.Option(
    "--save-dir", help="Root of the per-run checkpoint directories.")]
Ratio = Annotated[int | None, typer.Option("--downsample-ratio",
                                           help="Output stride of the density map: 8, 16 or 32.")]
Device = Annotated[str | None, typer.Option("--device", help="auto, cpu or cuda.")]
Db = Annotated[str | None, typer.Option(
    "--db", help="Runs database: a SQLite file or any SQLAlchemy URL. Default: ./runs.db.")]
Sets = Annotated[list[str] | None, typer.Option(
    "--set", help="Override any config field, e.g. --set stn=true (repeatable).")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]


def parse_sets(pairs: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set {pair!r} is not key=value (e.g. --set stn=true)")
        out[key.strip()] = value.strip()
    return out


def common_overrides(data_path: Path | None, epochs: int | None, batch_size: int | None,
                     lr: float | None, backbone_lr: float | None, ratio: int | None,
                     device: str | None, sets: list[str] | None) -> dict[str, Any]:
    """The options the user gave, as config overrides; ``--set`` wins over named options."""
    if data_path is not None and not data_path.exists():
        raise FileNotFoundError(f"--data-path {data_path} does not exist")
    if data_path is not None:
        detect_format(data_path)  # an unknown layout fails here, before a run is claimed
    named = {
        # Absolute, so that eval, resume and the config hash do not depend on the cwd.
        "data_path": str(data_path.resolve()) if data_path is not None else None,
        "epochs": epochs, "batch_size": batch_size, "lr": lr, "backbone_lr": backbone_lr,
        "downsample_ratio": ratio, "device": device,
    }
    return {**{k: v for k, v in named.items() if v is not None}, **parse_sets(sets)}
