"""Density regression heads: fused features -> a non-negative density map."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from model.registry import register


class DensityHead(nn.Module):
    def __init__(self, channels: int, hidden: int = 128) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, hidden, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden // 2, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(hidden // 2, 1, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # abs() as in Bayesian-loss counting: non-negative without ReLU's dead units.
        return torch.abs(self.net(x))


def resample(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bring a feature map to ``size``: bilinear up, area-average down."""
    if x.shape[-2:] == size:
        return x
    if x.shape[-2] < size[0]:
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    return F.adaptive_avg_pool2d(x, size)


@register("multiscale_head", "stride4")
class MultiScaleHead(nn.Module):
    """Stride-4 density from the upsampled deep features and the stride-4 encoder features."""

    def __init__(self, deep_channels: int, shallow_channels: int) -> None:
        super().__init__()
        self.head = DensityHead(deep_channels + shallow_channels, hidden=64)

    def forward(self, deep: torch.Tensor, shallow: torch.Tensor) -> torch.Tensor:
        up = resample(deep, tuple(shallow.shape[-2:]))
        return self.head(torch.cat([up, shallow], dim=1))


@register("multiscale_head", "none")
class NoHead(nn.Module):
    """Off: no stride-4 density."""

    def __init__(self, deep_channels: int = 0, shallow_channels: int = 0) -> None:
        super().__init__()

    def forward(self, deep: torch.Tensor, shallow: torch.Tensor) -> None:
        return None
