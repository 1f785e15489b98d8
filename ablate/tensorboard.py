"""Live logging (``--log tensorboard``): every run's epoch rows and debugging pictures as
TensorBoard event files, written while it trains.

One log directory per study, one TensorBoard run per (variant, seed), named ``A/seed0``::

    ablate study run studies/rgbtcc.toml --data-path ~/data/RGBT-CC --log tensorboard
    tensorboard --logdir runs/tensorboard/rgbtcc

Scalars: each loss term (``loss/<term>``), the val metrics (``val/game0``..``val/rmse``), the
learning rate and the training speed, per epoch; the test metrics at the end. Pictures: the
pictures of ``ablate viz`` (density and peaks over the image, per-cell counts, the STN warp of
the moving image, the offset field) for the first val image, from the epoch's checkpoint, every
``image_every`` epochs and at the last one.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ablate.errors import UsageError
from ablate.paths import inside
from ablate.pipeline import Hooks, RunOutcome, RunSpec
from ablate.viz import plots
from ablate.viz.infer import LoadedRun, infer
from model.config import RunConfig
from model.data import NormStats, PairSet, Sample, Splits, load_first_pair
from model.engine import checkpoint

LOGGERS = ("tensorboard",)
IMAGE_EVERY = 10  # epochs between pictures: each reloads the epoch's checkpoint on the CPU
# Row keys that are not a loss, a val metric or a learning rate (lr_<group>), and their tags.
OTHER_TAGS = {"lr": "lr/head", "pairs_per_s": "speed/pairs_per_s"}


def live_logging(names: tuple[str, ...], log_dir: Path,
                 image_every: int = IMAGE_EVERY) -> Hooks | None:
    """The hooks that ``--log NAME`` (repeatable) asks for, or None for none."""
    unknown = [n for n in names if n not in LOGGERS]
    if unknown:
        raise UsageError(f"--log {unknown[0]} is not valid; choose one of {', '.join(LOGGERS)}")
    return TensorBoardHooks(log_dir, image_every) if "tensorboard" in names else None


def scalar_tag(key: str) -> str | None:
    """The TensorBoard tag of an epoch-row key (None: not logged)."""
    if key == "epoch":
        return None
    if key == "loss":
        return "loss/total"
    if key.startswith("loss_"):
        return f"loss/{key.removeprefix('loss_')}"
    if key.startswith("val_"):
        return f"val/{key.removeprefix('val_')}"
    if key.startswith("lr_"):  # a parameter group's rate: lr_backbone
        return f"lr/{key.removeprefix('lr_')}"
    return OTHER_TAGS.get(key, f"other/{key}")


class TensorBoardHooks(Hooks):
    """Writes ``<log_dir>/<study>/<variant>/seed<seed>`` for every run this worker trains."""

    def __init__(self, log_dir: Path | str, image_every: int = IMAGE_EVERY) -> None:
        if image_every < 0:
            raise UsageError(f"image_every={image_every} is not valid; it must be >= 0")
        self.log_dir, self.image_every = Path(log_dir), image_every
        self.writer: Any = None
        self.spec: RunSpec | None = None
        self.last_epoch = -1
        self._pairs: dict[Any, tuple[Sample, NormStats]] = {}  # first val pair per dataset

    def on_claimed(self, spec: RunSpec, outcome: RunOutcome) -> None:
        # Imported here: TensorBoard is slow to import and only runs that log need it.
        from torch.utils.tensorboard import SummaryWriter

        self.close()
        folder = inside(self.log_dir, spec.study, spec.variant, f"seed{spec.seed}")
        self.writer, self.spec, self.last_epoch = SummaryWriter(str(folder)), spec, -1
        config = json.dumps(spec.config.to_dict(), indent=1)
        # Four leading spaces: TensorBoard renders text as Markdown, this keeps it verbatim.
        self.writer.add_text("config", "\n".join("    " + line for line in config.splitlines()))

    def on_epoch(self, epoch: int, row: dict[str, float]) -> None:
        if self.writer is None or self.spec is None:
            return
        for key, value in row.items():
            tag = scalar_tag(key)
            if tag is not None:
                self.writer.add_scalar(tag, float(value), epoch)
        self.last_epoch = epoch
        last = epoch == self.spec.config.train.epochs - 1
        if self.image_every and (epoch % self.image_every == 0 or last):
            self.pictures(epoch)
        self.writer.flush()

    def on_finished(self, outcome: RunOutcome) -> None:
        if self.writer is not None:
            for name, value in outcome.test.items():
                self.writer.add_scalar(f"test/{name}", float(value), max(self.last_epoch, 0))
        self.close()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.writer = self.spec = None

    def pictures(self, epoch: int) -> None:
        """The ``ablate viz`` pictures of the first val image at this epoch's checkpoint."""
        assert self.spec is not None
        path = self.spec.save_dir / checkpoint.LAST
        if not path.is_file():  # a run resumed in another folder: no pictures, scalars go on
            return
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
            drawings["offsets"] = lambda p: plots.offset_quiver(inf, p, cfg.aligner_name)
        with tempfile.TemporaryDirectory() as folder:
            for name, draw in drawings.items():
                png = draw(Path(folder) / f"{name}.png")
                with Image.open(png) as image:
                    pixels = np.asarray(image.convert("RGB"))
                self.writer.add_image(f"val_image/{name}", pixels, epoch, dataformats="HWC")

    def _first_val(self, config: RunConfig) -> tuple[Sample, NormStats]:
        key = (config.data, config.model.thermal_channels)
        if key not in self._pairs:
            self._pairs[key] = load_first_pair(config.data, "val", config.model.thermal_channels)
        return self._pairs[key]
