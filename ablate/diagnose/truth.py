"""One split of the dataset, read for diagnosis: labels, sizes and each pair's displacement.

Only the chosen split is decoded, one pair at a time, and the images are dropped once the
displacement is known, so a 800-image RGBT-CC test split never sits in memory; the few pairs
an overlay needs are decoded again.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from ablate.diagnose.camera import estimate_shift, shift_affine
from ablate.diagnose.scoring import truth_cells
from ablate.errors import DataError, UsageError
from model.config import DataConfig
from model.data import Sample, load_splits
from model.data.io import load_pair
from model.data.layouts import layout_of
from model.data.synth import synthetic_pairs
from model.game import point_map

SPLITS = ("train", "val", "test")


@dataclass
class Truth:
    id: str
    size: tuple[int, int]  # (H, W)
    points: torch.Tensor  # (N, 2) (x, y), thermal frame
    cells: torch.Tensor  # (8, 8) cell sums of the rasterised ground truth
    affine: torch.Tensor  # (2, 3) thermal pixel -> RGB pixel
    affine_source: str  # "dataset" (the synthetic generator wrote it) or "estimated"


def _provided_affine(meta: dict) -> torch.Tensor | None:
    affine = meta.get("affine")
    return None if affine is None else torch.as_tensor(affine, dtype=torch.float64)


def _truth(sample: Sample, meta: dict) -> Truth:
    affine = _provided_affine(meta)
    source = "dataset"
    if affine is None:
        affine, source = shift_affine(estimate_shift(sample.rgb, sample.thermal)), "estimated"
    points = sample.points.to(torch.float64)
    return Truth(sample.id, sample.size, points, truth_cells(point_map(points, sample.size)),
                 affine, source)


def _label_meta(label: Path) -> dict:
    """The ``"synthetic"`` record ``ablate data synth`` writes beside the points (if any)."""
    if label.suffix.lower() != ".json":
        return {}
    try:
        meta = json.loads(label.read_text()).get("synthetic")
    except (OSError, ValueError, AttributeError):
        return {}  # load_pair has already read this file; a problem there is reported there
    return meta if isinstance(meta, dict) else {}


class SplitData:
    """The pairs of one split: ``ids`` without decoding, ``truths()`` and ``sample(id)``."""

    def __init__(self, data_path: Path | None, split: str):
        if split not in SPLITS:
            raise UsageError(f"--split {split!r} is not valid; choose one of {', '.join(SPLITS)}")
        self.data_path, self.split = data_path, split
        self._samples: dict[str, Sample] = {}
        self._files = {}
        if data_path is None:  # the built-in synthetic set: render only this split
            cfg = DataConfig()
            pairs = synthetic_pairs(cfg, split, getattr(cfg, f"synth_n_{split}"))
            self._samples = {s.id: s for s in pairs}
        elif self._carved():
            pairs = getattr(load_splits(DataConfig(data_path=str(data_path))), split)
            self._samples = {s.id: s for s in pairs}
        else:
            files, problems = layout_of(data_path).scan(Path(data_path), split)
            if problems:
                more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
                raise DataError(problems[0] + more)
            self._files = {f.id: f for f in files}
        self.ids = list(self._samples or self._files)

    def _carved(self) -> bool:
        # DroneRGBT's val pairs are held out of train by load_splits; reuse its choice.
        return self.split == "val" and layout_of(self.data_path).val_from_train

    def sample(self, sample_id: str) -> tuple[Sample, dict]:
        if sample_id in self._samples:
            sample = self._samples[sample_id]
            return sample, sample.meta
        f = self._files[sample_id]
        return load_pair(f.id, f.rgb, f.thermal, f.label), _label_meta(f.label)

    def truths(self, ids: list[str]) -> Iterator[Truth]:
        for sample_id in ids:
            yield _truth(*self.sample(sample_id))
