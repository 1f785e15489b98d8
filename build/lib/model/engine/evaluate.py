"""Evaluation with the official protocol at full image size, and the oracle check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from model.config import TrainConfig
from model.data import NormStats, PairSet, eval_batches, load_splits, normalize
from model.engine import checkpoint
from model.engine.device import autocast, resolve_device
from model.errors import ConfigError
from model.metrics import MetricAccumulator, point_map

SPLITS = ("train", "val", "test")


def pad_to(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Zero-pad bottom/right so the network's stride divides the image; labels are unaffected."""
    h, w = x.shape[-2:]
    return F.pad(x, (0, -w % multiple, 0, -h % multiple))


@torch.no_grad()
def evaluate(
    net: torch.nn.Module,
    pairs: PairSet,
    stats: NormStats,
    device: torch.device,
    train_cfg: TrainConfig | None = None,
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """GAME0-3 / RMSE / MAE over ``pairs`` and the per-image rows behind them."""
    was_training = net.training
    net.eval()
    ratio = net.cfg.downsample_ratio
    acc = MetricAccumulator()
    try:
        for batch in eval_batches(pairs, device=device):
            batch = normalize(batch, stats)
            rgb, thermal = pad_to(batch.rgb, ratio), pad_to(batch.thermal, ratio)
            with autocast(train_cfg or TrainConfig(), device):
                density = net(rgb, thermal).density.float()
            h, w = batch.image_size
            # Drop the padded margin so the prediction covers exactly the image.
            density = density[..., : -(-h // ratio), : -(-w // ratio)]
            acc.add_batch(density, batch)
    finally:
        net.train(was_training)
    return acc.summary(), acc.results()


def oracle_check(
    pairs: PairSet,
    stride: int = 1,
    shifts: tuple[int, ...] = (0, 2, 4, 8, 16),
) -> list[dict[str, float]]:
    """Score the ground truth itself as the prediction, then shifted copies of it.

    The prediction is the rasterised point map sum-pooled to ``stride``. Unshifted at stride
    1 every GAME level must be 0: if not, the evaluation pipeline has a coordinate bug. At
    stride 8 the small remainder is what the protocol's bicubic resampling costs. The shifted
    rows show what a misregistration of that many pixels costs in GAME1-3 while GAME0 stays put.
    """
    if stride < 1:
        raise ConfigError(f"stride={stride} is not valid; it must be >= 1")
    rows = []
    for shift in shifts:
        acc = MetricAccumulator()
        for sample in pairs:
            h, w = sample.size
            moved = sample.points + float(shift)
            # Points pushed past the border stay counted, so GAME0 isolates the shift's cost.
            moved = torch.minimum(moved, torch.tensor([w - 1.0, h - 1.0]))
            truth = point_map(moved, (h, w))[None, None]
            truth = F.pad(truth, (0, -w % stride, 0, -h % stride))
            density = F.avg_pool2d(truth, stride, divisor_override=1)
            acc.add(density[0], sample.points, (h, w), sample.id)
        rows.append({"shift_px": shift, **acc.summary()})
    return rows


def evaluate_checkpoint(
    path: str | Path,
    split: str = "test",
    overrides: dict[str, Any] | None = None,
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Evaluate a saved checkpoint on any split, with the network built from the config stored
    in it; ``overrides`` may move data_path or device."""
    if split not in SPLITS:
        raise ConfigError(f"split={split!r} is not valid; choose one of {', '.join(SPLITS)}")
    loaded = checkpoint.load_model(path, overrides)
    cfg = loaded.config
    device = resolve_device(cfg.train.device)
    splits = load_splits(cfg.data, cfg.model.thermal_channels)
    return evaluate(loaded.net.to(device), getattr(splits, split), splits.stats, device, cfg.train)
