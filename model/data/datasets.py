"""Loading a dataset root into in-memory splits, and checking one without stopping at errors."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import torch

from model.config import DataConfig
from model.data.errors import DataError
from model.data.io import load_pair
from model.data.layouts import Layout, PairFiles, detect_format, layout_of
from model.data.sample import (
    DRONERGBT_STATS,
    RGBTCC_STATS,
    NormStats,
    PairSet,
    Sample,
    Splits,
)
from model.data.synth import synthetic_splits
from model.registry import lookup

# DroneRGBT has no val split; the held-out pairs are a fixed permutation of train so every run,
# machine and seed validates on the same pairs (and the model-selection metric is comparable).
DRONERGBT_VAL_SEED = 20240917


def _first_problem(problems: list[str], root: Path) -> DataError:
    more = (
        f" (and {len(problems) - 1} more; run: ablate data check {root})"
        if len(problems) > 1
        else ""
    )
    return DataError(problems[0] + more)


STATS = {"rgbtcc": RGBTCC_STATS, "dronergbt": DRONERGBT_STATS}


def _load_split(root: Path, layout: Layout, split: str, thermal_channels: int) -> list:
    files, problems = layout.scan(root, split)
    if problems:
        raise _first_problem(problems, root)
    return [load_pair(f.id, f.rgb, f.thermal, f.label, thermal_channels) for f in files]


def _held_out(n_train: int, val_size: int, root: Path) -> list[int]:
    """Indices of the train pairs DroneRGBT's val split holds, in val order."""
    if not 0 < val_size < n_train:
        raise DataError(
            f"val_size={val_size} cannot be held out of the {n_train} DroneRGBT train pairs in "
            f"{root / 'train'}; choose 1 to {n_train - 1}"
        )
    order = torch.randperm(n_train, generator=torch.Generator().manual_seed(DRONERGBT_VAL_SEED))
    return sorted(order[:val_size].tolist())


def _carve_val(train: list, val_size: int, root: Path) -> tuple[list, list]:
    held = set(_held_out(len(train), val_size, root))
    keep = [s for i, s in enumerate(train) if i not in held]
    val = [s for i, s in enumerate(train) if i in held]
    return keep, val


def load_splits(cfg: DataConfig, thermal_channels: int = 3) -> Splits:
    """Decode a whole dataset once into uint8 tensors (or build the synthetic one).

    ``cfg.data_path`` None gives the built-in synthetic set. Any bad file raises a one-line
    DataError naming it; ``check_dataset`` lists them all instead.
    """
    if cfg.data_path is None:
        return synthetic_splits(cfg, thermal_channels)
    root = Path(cfg.data_path)
    fmt = detect_format(root)
    layout = lookup("layout", fmt)
    train = _load_split(root, layout, "train", thermal_channels)
    test = _load_split(root, layout, "test", thermal_channels)
    if layout.val_from_train:
        train, val = _carve_val(train, cfg.val_size, root)
    else:
        val = _load_split(root, layout, "val", thermal_channels)
    return Splits(
        train=PairSet("train", train),
        val=PairSet("val", val),
        test=PairSet("test", test),
        format=fmt,
        stats=STATS[layout.stats],
    )


def load_first_pair(cfg: DataConfig, split: str,
                    thermal_channels: int = 3) -> tuple[Sample, NormStats]:
    """The first pair of ``split`` as ``load_splits`` orders it and the normalisation the run
    uses, decoding only that pair (live logging shows the same val image every few epochs
    without decoding the whole set again)."""
    if cfg.data_path is None:
        splits = synthetic_splits(cfg, thermal_channels)
        return getattr(splits, split)[0], splits.stats
    root = Path(cfg.data_path)
    layout = layout_of(root)
    # DroneRGBT's val pairs are held out of train (see _carve_val).
    scanned = "train" if layout.val_from_train and split == "val" else split
    if scanned not in layout.splits:
        raise DataError(f"{root} has no {split} split ({', '.join(layout.splits)})")
    files, problems = layout.scan(root, scanned)
    if problems or not files:
        raise _first_problem(problems or [f"empty split {split} in {root}"], root)
    index = _held_out(len(files), cfg.val_size, root)[0] if scanned != split else 0
    f = files[index]
    return load_pair(f.id, f.rgb, f.thermal, f.label, thermal_channels), STATS[layout.stats]


def _check_split(files: list[PairFiles], problems: list[str]) -> dict[str, Any]:
    sizes: Counter[str] = Counter()
    counts: list[int] = []
    outside = 0
    for f in files:
        try:
            sample = load_pair(f.id, f.rgb, f.thermal, f.label)
        except DataError as exc:
            problems.append(str(exc))
            continue
        height, width = sample.size
        sizes[f"{width}x{height}"] += 1
        counts.append(int(sample.points.shape[0]) + sample.dropped)
        outside += sample.dropped
    total = sum(counts)
    return {
        "pairs": len(counts),
        "points": total,  # as labelled, including those outside the image
        "mean_points": round(total / len(counts), 2) if counts else 0.0,
        "min_points": min(counts, default=0),
        "max_points": max(counts, default=0),
        "image_sizes": dict(sizes.most_common()),
        "points_outside": outside,  # dropped when loading
    }


def check_dataset(path: str | Path) -> dict[str, Any]:
    """Per-split statistics and every problem found, without stopping at the first one.

    A path that does not exist or holds neither layout still raises DataError: there is nothing
    to check.
    """
    root = Path(path)
    fmt = detect_format(root)
    layout = lookup("layout", fmt)
    report: dict[str, Any] = {"format": fmt, "path": str(root), "splits": {}, "problems": []}
    for split in layout.splits:
        files, problems = layout.scan(root, split)
        report["splits"][split] = _check_split(files, problems)
        report["problems"].extend(problems)
    return report
