"""Image-level coarse alignment: an affine spatial transformer (Jaderberg et al., NeurIPS 2015).

The localisation net sees the moving and the reference image together, since a shift between
two images cannot be read from one of them alone. Identity-initialised: at init the warped
image equals the input.

An "stn" registry entry is built as ``cls(moving_channels, reference_channels)`` and called as
``forward(moving, reference)`` -> ``(warped, theta)``; "none" returns its input and no theta.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from model.registry import register

IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


@register("stn", "none")
class NoSTN(nn.Module):
    """Off: the moving image unchanged, and no theta to plot."""

    def __init__(self, moving_channels: int = 0, reference_channels: int = 0) -> None:
        super().__init__()

    def forward(self, moving: torch.Tensor, reference: torch.Tensor):
        return moving, None


@register("stn", "affine")
class AffineSTN(nn.Module):
    def __init__(self, moving_channels: int, reference_channels: int, width: int = 32) -> None:
        super().__init__()
        c = moving_channels + reference_channels
        self.features = nn.Sequential(
            nn.Conv2d(c, width, 5, stride=2, padding=2), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, stride=2, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, stride=2, padding=1), nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),
        )
        self.regress = nn.Linear(width * 16, 6)
        nn.init.zeros_(self.regress.weight)
        with torch.no_grad():
            self.regress.bias.copy_(torch.tensor(IDENTITY))

    def forward(self, moving: torch.Tensor, reference: torch.Tensor):
        theta = self.regress(self.features(torch.cat([moving, reference], dim=1))).view(-1, 2, 3)
        grid = F.affine_grid(theta, list(moving.shape), align_corners=False)
        warped = F.grid_sample(moving, grid, mode="bilinear", padding_mode="zeros",
                               align_corners=False)
        return warped, theta  # (B, C, H, W), (B, 2, 3)


def theta_translation_px(theta: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Translation of an affine_grid theta in pixels: (B, 2) as (dx, dy) of the sampling point."""
    return torch.stack([theta[:, 0, 2] * width / 2, theta[:, 1, 2] * height / 2], dim=1)
