"""RGB-T crowd data: RGBT-CC and DroneRGBT from disk, built-in synthetic crowds, augmentation,
targets and loaders. Every bad input raises ``DataError`` with one line naming the file.

The names below load their module on first use: the errors and layout detection need no torch,
so the runs database, the reports and study files can import them without it.
"""

import importlib
from typing import Any

from model.data.errors import DataError
from model.data.layouts import detect_format

_LAZY = {
    "Batch": "batch",
    "DRONERGBT_STATS": "sample",
    "NormStats": "sample",
    "PairSet": "sample",
    "RGBTCC_STATS": "sample",
    "Sample": "sample",
    "Splits": "sample",
    "check_dataset": "datasets",
    "collate": "collate",
    "compute_stats": "sample",
    "crop_flip": "augment",
    "crop_params": "augment",
    "eval_batches": "loader",
    "gather_crops": "augment",
    "load_first_pair": "datasets",
    "load_splits": "datasets",
    "normalize": "sample",
    "random_affine": "misalign",
    "synth_sample": "synth",
    "synthetic_splits": "synth",
    "train_batches": "loader",
    "warp_points": "misalign",
    "write_rgbtcc": "write",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f"model.data.{_LAZY[name]}"), name)
        # Bound here, as an eager import would: importing model.data.collate set the package's
        # attribute "collate" to that module, which would shadow the function from now on.
        globals()[name] = value
        return value
    raise AttributeError(f"module 'model.data' has no attribute {name!r}")


__all__ = [
    "DRONERGBT_STATS",
    "RGBTCC_STATS",
    "Batch",
    "DataError",
    "NormStats",
    "PairSet",
    "Sample",
    "Splits",
    "check_dataset",
    "collate",
    "compute_stats",
    "crop_flip",
    "crop_params",
    "detect_format",
    "eval_batches",
    "gather_crops",
    "load_first_pair",
    "load_splits",
    "normalize",
    "random_affine",
    "synth_sample",
    "synthetic_splits",
    "train_batches",
    "warp_points",
    "write_rgbtcc",
]
