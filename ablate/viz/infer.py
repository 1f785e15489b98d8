"""Load a recorded run's best checkpoint and run it on a few full images, keeping everything the
pictures need: the images, the STN warp, the offset field and the density in the label frame."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ablate.db import Run, RunStore
from ablate.errors import CheckpointError
from model.config import RunConfig
from model.data import PairSet, Sample, Splits, eval_batches, load_splits, normalize
from model.engine import checkpoint
from model.engine.evaluate import head_alignment_errors, pad_to
from model.game import game_per_image, upsample_density
from model.layers.stn import theta_translation_px
from model.network import RGBTCounter


@dataclass
class Inference:
    """One image through the network, as numpy arrays for plotting."""

    sample: Sample
    reference: np.ndarray  # (H, W, 3) in [0, 1]: the image whose frame the labels live in
    moving: np.ndarray  # (H, W, 3) in [0, 1]: the other modality, before the STN
    warped: np.ndarray | None  # (H, W, 3): the moving image after the STN (None: STN off)
    stn_shift_px: tuple[float, float] | None  # the STN's translation (dx, dy) in pixels
    density: np.ndarray  # (h, w) the network's output at stride r
    density_full: np.ndarray  # (H, W) resized as the protocol does (sums to the count)
    offsets: np.ndarray | None  # (2, h', w') the aligner's (dx, dy) in feature pixels (None: off)
    offset_stride: int  # input pixels per feature pixel of the offset field
    points: np.ndarray  # (N, 2) ground truth (x, y) in the thermal frame
    game: dict[str, Any]  # game_per_image: game0..3, counts, signed cell errors
    # Synthetic data: mean over the heads of (residual after alignment, displacement without
    # it) in input pixels, as evaluation records them (head_alignment_errors); else None.
    align_px: tuple[float, float] | None = None


@dataclass
class LoadedRun:
    run: Run
    config: RunConfig
    net: RGBTCounter
    checkpoint: Path
    epoch: int


def checkpoint_path(store: RunStore, run: Run) -> Path:
    """``save_dir``/best.pt; a relative save_dir is tried from here, then beside the database
    (runs are recorded relative to where ``ablate study run`` was started)."""
    if not run.save_dir:
        raise CheckpointError(f"run {run.id} has no save_dir recorded (status {run.status})")
    save_dir = Path(run.save_dir)
    candidates = [save_dir]
    if not save_dir.is_absolute() and store.url.get_backend_name() == "sqlite" and \
            store.url.database:
        candidates.append(Path(store.url.database).parent / save_dir)
    for folder in candidates:
        if (folder / checkpoint.BEST).is_file():
            return folder / checkpoint.BEST
    raise CheckpointError(f"run {run.id} ({run.variant}, seed {run.seed}, {run.status}) has no "
                      f"checkpoint at {candidates[0] / checkpoint.BEST}")


def load_run(store: RunStore, run_id: int) -> LoadedRun:
    run = store.get_run(run_id)
    path = checkpoint_path(store, run)
    loaded = checkpoint.load_model(path)
    return LoadedRun(run, loaded.config, loaded.net, path, loaded.epoch)


def load_pairs(cfg: RunConfig, split: str, data_path: str | None) -> tuple[PairSet, Splits]:
    data = cfg.data if data_path is None else dataclasses.replace(cfg.data, data_path=data_path)
    splits = load_splits(data, cfg.model.thermal_channels)
    return getattr(splits, split), splits


@torch.no_grad()
def infer(loaded: LoadedRun, pairs: PairSet, splits: Splits, n_images: int) -> list[Inference]:
    net, cfg = loaded.net, loaded.config.model
    ratio = cfg.downsample_ratio
    stride = net.encoder.feature_info[cfg.offset_stage - 1].stride
    out = []
    for sample, batch in zip(pairs, eval_batches(pairs), strict=False):
        if len(out) >= n_images:
            break
        normed = normalize(batch, splits.stats)
        h, w = batch.image_size
        rgb, thermal = pad_to(normed.rgb, ratio), pad_to(normed.thermal, ratio)
        result = net(rgb, thermal)
        density = result.density.float()[0, 0, : -(-h // ratio), : -(-w // ratio)]
        ref, mov = (sample.thermal, sample.rgb) if cfg.moving == "rgb" else (sample.rgb,
                                                                             sample.thermal)
        warped = shift = None
        if result.theta is not None:  # an STN that is off returns its input and no theta
            warped = _display(result.moving_warped[0, :, :h, :w])
            dx, dy = theta_translation_px(result.theta, rgb.shape[-2], rgb.shape[-1])[0].tolist()
            shift = (dx, dy)
        out.append(Inference(
            sample=sample, reference=_display(ref), moving=_display(mov), warped=warped,
            stn_shift_px=shift, density=density.numpy(),
            density_full=upsample_density(density, (h, w)).numpy(),
            offsets=_first(result.displacement),
            offset_stride=stride, points=sample.points.numpy(),
            game=game_per_image(density, sample.points, (h, w)),
            align_px=_alignment(result, sample, tuple(rgb.shape[-2:]), cfg.moving == "rgb"),
        ))
    return out


def _alignment(result, sample: Sample, size: tuple[int, int],
               moving_is_rgb: bool) -> tuple[float, float] | None:
    if "rgb_points" not in sample.meta or len(sample.points) == 0:
        return None
    errors = head_alignment_errors(result, sample.points, sample.meta["rgb_points"], size,
                                   moving_is_rgb)
    residual, baseline = errors.mean(0).tolist()
    return residual, baseline


def _display(image: torch.Tensor) -> np.ndarray:
    """(C, H, W) uint8 or normalised float -> (H, W, 3) in [0, 1], stretched per image."""
    x = image.float()
    x = (x - x.min()) / (x.max() - x.min()).clamp(min=1e-6)
    if x.shape[0] == 1:
        x = x.expand(3, -1, -1)
    return x.permute(1, 2, 0).numpy()


def _first(displacement: torch.Tensor | None) -> np.ndarray | None:
    """The first image's (2, h, w) (dx, dy) field, whichever aligner produced it."""
    return None if displacement is None else displacement[0].float().numpy()
