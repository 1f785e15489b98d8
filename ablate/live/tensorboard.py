"""Live logging (``--log tensorboard``, ``--log mlflow``): every run's epoch rows and debugging
pictures, written while it trains. ``live_logging`` makes the hooks of the loggers asked for;
the TensorBoard one is here, MLflow's in ``ablate.live.mlflow_log``.

One log directory per study, one TensorBoard run per (variant, seed), named ``A/seed0``::

    ablate study run studies/rgbtcc.toml --data-path ~/data/RGBT-CC --log tensorboard
    tensorboard --logdir runs/tensorboard/rgbtcc

Scalars (tags from ``ablate.live.tags``): each loss term (``loss/<term>``), the val metrics
(``val/game0``..``val/rmse``), the learning rate and the training speed, per epoch; the test
metrics at the end. Pictures (``ablate.live.pictures``): the pictures of ``ablate viz`` for the
first val image, from the epoch's checkpoint, every ``image_every`` epochs and at the last one.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ablate.errors import UsageError
from ablate.live.pictures import IMAGE_EVERY, FirstValPictures, picture_epoch
from ablate.live.tags import OTHER_TAGS, scalar_tag, scalars
from ablate.paths import inside
from ablate.run.hooks import Chain, Hooks, RunOutcome
from ablate.study.plan import RunSpec

# IMAGE_EVERY, OTHER_TAGS and scalar_tag moved to the shared modules; still importable here.
__all__ = ["IMAGE_EVERY", "LOGGERS", "OTHER_TAGS", "TensorBoardHooks", "live_logging",
           "scalar_tag"]

LOGGERS = ("tensorboard", "mlflow")


def live_logging(names: tuple[str, ...], log_dir: Path,
                 image_every: int = IMAGE_EVERY) -> Hooks | None:
    """The hooks that ``--log NAME`` (repeatable) asks for, or None for none. MLflow logs to
    ``MLFLOW_TRACKING_URI``, else to a local store under ``log_dir``."""
    unknown = [n for n in names if n not in LOGGERS]
    if unknown:
        raise UsageError(f"--log {unknown[0]} is not valid; choose one of {', '.join(LOGGERS)}")
    hooks: list[Hooks] = []
    if "tensorboard" in names:
        hooks.append(TensorBoardHooks(log_dir, image_every))
    if "mlflow" in names:
        from ablate.live.mlflow_log import mlflow_hooks  # imports mlflow: only when asked for

        hooks.append(mlflow_hooks(log_dir, image_every))
    if len(hooks) > 1:
        return Chain(*hooks)
    return hooks[0] if hooks else None


class TensorBoardHooks(Hooks):
    """Writes ``<log_dir>/<study>/<variant>/seed<seed>`` for every run this worker trains."""

    def __init__(self, log_dir: Path | str, image_every: int = IMAGE_EVERY) -> None:
        if image_every < 0:
            raise UsageError(f"image_every={image_every} is not valid; it must be >= 0")
        self.log_dir, self.image_every = Path(log_dir), image_every
        self.writer: Any = None
        self.spec: RunSpec | None = None
        self.last_epoch = -1
        self.drawer = FirstValPictures()

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
        for tag, value in scalars(row).items():
            self.writer.add_scalar(tag, value, epoch)
        self.last_epoch = epoch
        if picture_epoch(epoch, self.spec.config.train.epochs, self.image_every):
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
        with tempfile.TemporaryDirectory() as folder:
            for name, png in self.drawer.draw(self.spec.save_dir, epoch, Path(folder)).items():
                with Image.open(png) as image:
                    pixels = np.asarray(image.convert("RGB"))
                self.writer.add_image(f"val_image/{name}", pixels, epoch, dataformats="HWC")
