"""RGB-T crowd data: RGBT-CC and DroneRGBT from disk, built-in synthetic crowds, augmentation,
targets and loaders. Every bad input raises ``DataError`` with one line naming the file."""

from model.data.augment import crop_flip, crop_params, gather_crops
from model.data.batch import Batch
from model.data.collate import collate
from model.data.datasets import check_dataset, load_first_pair, load_splits
from model.data.errors import DataError
from model.data.layouts import detect_format
from model.data.loader import eval_batches, train_batches
from model.data.misalign import random_affine, warp_points
from model.data.sample import (
    DRONERGBT_STATS,
    RGBTCC_STATS,
    NormStats,
    PairSet,
    Sample,
    Splits,
    compute_stats,
    normalize,
)
from model.data.synth import synth_sample, synthetic_splits
from model.data.write import write_rgbtcc

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
