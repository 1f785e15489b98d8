"""The pictures live loggers show while a run trains: those of ``ablate viz`` (density and
peaks over the image, per-cell counts, the STN warp of the moving image, the offset field)
for the first val image, from the epoch's checkpoint."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ablate.viz import plots
from ablate.viz.infer import LoadedRun, infer
from model.config import RunConfig
from model.data import NormStats, PairSet, Sample, Splits, load_first_pair
from model.engine import checkpoint

IMAGE_EVERY = 10  # epochs between pictures: each reloads the epoch's checkpoint on the CPU


def picture_epoch(epoch: int, epochs: int, image_every: int) -> bool:
    """Whether epoch ``epoch`` of ``epochs`` gets pictures (every ``image_every``, and the
    last; never when ``image_every`` is 0)."""
    return bool(image_every) and (epoch % image_every == 0 or epoch == epochs - 1)


class FirstValPictures:
    """Draws the pictures of a run's checkpoint; decodes each dataset's first val pair once."""

    def __init__(self) -> None:
        self._pairs: dict[Any, tuple[Sample, NormStats]] = {}

    def draw(self, save_dir: Path, epoch: int, folder: Path) -> dict[str, Path]:
        """PNG files in ``folder`` by picture name (density, cells, and stn and offsets where
        the module is on); none when ``save_dir`` holds no checkpoint (a run resumed in
        another folder)."""
        path = save_dir / checkpoint.LAST
        if not path.is_file():
            return {}
        loaded = checkpoint.load_model(path)
        sample, stats = self._first_val(loaded.config)
        pairs = PairSet("val", [sample])
        splits = Splits(pairs, pairs, pairs, "", stats)
        run = LoadedRun(None, loaded.config, loaded.net, path, epoch)  # type: ignore[arg-type]
        inf = infer(run, pairs, splits, 1)[0]
        cfg = loaded.config.model
        drawings = {"density": lambda p: plots.density_overlay(inf, p),
                    "cells": lambda p: plots.cell_grids(inf, p)}
        if inf.warped is not None:
            drawings["stn"] = lambda p: plots.stn_overlay(inf, p, cfg.moving, cfg.reference)
        if inf.offsets is not None:
            drawings["offsets"] = lambda p: plots.offset_quiver(inf, p, cfg.aligner)
        return {name: draw(folder / f"{name}.png") for name, draw in drawings.items()}

    def _first_val(self, config: RunConfig) -> tuple[Sample, NormStats]:
        key = (config.data, config.model.thermal_channels)
        if key not in self._pairs:
            self._pairs[key] = load_first_pair(config.data, "val", config.model.thermal_channels)
        return self._pairs[key]
