"""Evaluation with the official protocol at full image size, and the oracle check."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from model.config import TrainConfig
from model.data import NormStats, PairSet, eval_batches, load_splits, normalize
from model.engine import checkpoint
from model.engine.device import autocast, resolve_device
from model.errors import ConfigError
from model.game import MetricAccumulator, point_map
from model.metrics import ALIGN_KEYS
from model.output import ModelOutput

SPLITS = ("train", "val", "test")
# Keys evaluate() adds when the samples know their true RGB position of every head (synthetic).


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
    warp_moving: Callable[[torch.Tensor], torch.Tensor] | None = None,
    align: bool = True,
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """GAME0-3 / RMSE / MAE over ``pairs`` and the per-image rows behind them.

    ``warp_moving`` (``ablate robustness``) displaces the normalised moving image of each pair;
    the labels live on the reference image and stay where they are. ``align``: on synthetic
    data (samples whose meta holds the heads' true RGB position), also ALIGN_KEYS, the mean
    displacement at the heads left after the model's alignment and without it."""
    was_training = net.training
    net.eval()
    train_cfg = train_cfg or TrainConfig()
    ratio = net.cfg.downsample_ratio
    acc = MetricAccumulator()
    errors: list[torch.Tensor] = []  # per head: (residual, baseline) after/without alignment
    moving_is_rgb = getattr(net.cfg, "moving", "rgb") == "rgb"
    by_id = {s.id: s for s in pairs}
    try:
        for batch in eval_batches(pairs, device, train_cfg.eval_batch_size):
            batch = normalize(batch, stats)
            if warp_moving is not None:
                moved = warp_moving(getattr(batch, net.cfg.moving))
                batch = replace(batch, **{net.cfg.moving: moved})
            rgb, thermal = pad_to(batch.rgb, ratio), pad_to(batch.thermal, ratio)
            with autocast(train_cfg, device):
                out = net(rgb, thermal)
            # An extra warp_moving displacement is not in the generator's truth: not measured.
            for i, image_id in enumerate(batch.ids):
                sample = by_id[image_id]
                if align and "rgb_points" in sample.meta and warp_moving is None:
                    errors.append(head_alignment_errors(
                        out, sample.points, sample.meta["rgb_points"], tuple(rgb.shape[-2:]),
                        moving_is_rgb, index=i))
            h, w = batch.image_size
            # Drop the padded margin so the prediction covers exactly the image.
            acc.add_batch(out.density[..., : -(-h // ratio), : -(-w // ratio)], batch)
    finally:
        net.train(was_training)
    summary = acc.summary()
    if errors:
        both = torch.cat(errors)
        # Pooled over every labelled head of the split; NaN when the split has no heads.
        summary.update(zip(ALIGN_KEYS, both.mean(0).tolist() if len(both) else
                           [float("nan")] * 2, strict=True))
    position = {s.id: i for i, s in enumerate(pairs)}  # rows in the split's order
    return summary, sorted(acc.results(), key=lambda row: position[row["image_id"]])


def head_alignment_errors(out: ModelOutput, points: torch.Tensor, rgb_points: torch.Tensor,
                          size: tuple[int, int], moving_is_rgb: bool = True,
                          index: int = 0) -> torch.Tensor:
    """(N, 2): per head, how far the aligned moving image still is from the reference (the
    residual) and how far it was before alignment (the baseline), in input pixels.

    The aligned moving features at reference pixel x come from the moving image at
    g(x + f(x)): f is the offset field (feature pixels, scaled by the stride) applied after the
    STN, g the STN's sampling map (``theta`` for ``affine_grid`` with align_corners=False over
    the padded ``size``; pixel c spans [c, c + 1)). Alignment is right at a head whose reference
    position is p when g(p + f(p)) is where the same head is in the moving image, q. So the
    residual is |q - g(p + f(p))| and the baseline (identity alignment) is |q - p|. Image
    ``index`` of the batch.
    """
    ref, mov = (points, rgb_points) if moving_is_rgb else (rgb_points, points)
    ref, mov = ref.float().cpu(), mov.float().cpu()
    extent = torch.tensor([size[1], size[0]], dtype=torch.float32)  # (W, H)
    x = ref
    if out.displacement is not None and len(ref):
        # (1, 2, h, w) as (dx, dy) feature pixels
        field = out.displacement[index:index + 1].float().cpu()
        stride = extent / torch.tensor([field.shape[-1], field.shape[-2]], dtype=torch.float32)
        grid = (2 * ref / extent - 1)[None, None]  # (1, 1, N, 2) normalised, as the flow warp
        at_heads = F.grid_sample(field, grid, mode="bilinear", padding_mode="border",
                                 align_corners=False)[0, :, 0].T  # (N, 2)
        x = x + at_heads * stride
    if out.theta is not None:
        theta = out.theta[index].float().cpu()  # (2, 3) normalised -> normalised
        x = ((2 * x / extent - 1) @ theta[:, :2].T + theta[:, 2] + 1) * extent / 2
    return torch.stack([(mov - x).norm(dim=1), (mov - ref).norm(dim=1)], dim=1)


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
    align: bool = False,
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Evaluate a saved checkpoint on any split, with the network built from the config stored
    in it; ``overrides`` may move data_path or device. ``align``: add ALIGN_KEYS on synthetic
    data (off by default, so ``ablate eval --json`` prints exactly the registered metrics)."""
    if split not in SPLITS:
        raise ConfigError(f"split={split!r} is not valid; choose one of {', '.join(SPLITS)}")
    loaded = checkpoint.load_model(path, overrides)
    cfg = loaded.config
    device = resolve_device(cfg.train.device)
    splits = load_splits(cfg.data, cfg.model.thermal_channels)
    return evaluate(loaded.net.to(device), getattr(splits, split), splits.stats, device, cfg.train,
                    align=align)
