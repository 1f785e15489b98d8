"""Image-level coarse alignment: spatial transformers (Jaderberg et al., NeurIPS 2015).

The localisation net sees the moving and the reference image together, since a shift between
two images cannot be read from one of them alone. Identity-initialised: at init the warped
image equals the input.

An "stn" registry entry is built as ``cls(moving_channels, reference_channels, **limits)``
(``limits``: ``ModelConfig.stn_limits()``, which an entry may ignore) and called as
``forward(moving, reference)`` -> ``(warped, theta)``; theta is the (B, 2, 3) matrix of
``F.affine_grid`` (align_corners=False) over the input it was given; "none" returns its input
and no theta.

"bounded" (the default) regresses a transform in pixels: a shift of at most ``max_shift`` px,
a rotation of at most ``max_rotation`` degrees and a scale within 1 +- ``max_scale``, about the
centre of the input. A shift therefore moves content by the same number of pixels on a training
crop and on a larger test image, which a translation in normalised coordinates does not.
"affine" is the free 6-parameter affine in normalised coordinates of the first version.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from model.registry import register

IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def _localisation(channels: int, width: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(channels, width, 5, stride=2, padding=2), nn.ReLU(inplace=True),
        nn.Conv2d(width, width, 3, stride=2, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(width, width, 3, stride=2, padding=1), nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(4),
        nn.Flatten(),
    )


def warp(moving: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Sample ``moving`` (B, C, H, W) where ``theta`` (B, 2, 3) points; zeros outside."""
    grid = F.affine_grid(theta.to(moving.dtype), list(moving.shape), align_corners=False)
    return F.grid_sample(moving, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


@register("stn", "none")
class NoSTN(nn.Module):
    """Off: the moving image unchanged, and no theta to plot."""

    def __init__(self, moving_channels: int = 0, reference_channels: int = 0, **limits) -> None:
        super().__init__()

    def forward(self, moving: torch.Tensor, reference: torch.Tensor):
        return moving, None


@register("stn", "affine")
class AffineSTN(nn.Module):
    """A free affine in normalised coordinates (no bound, translation in image fractions)."""

    def __init__(self, moving_channels: int, reference_channels: int, width: int = 32,
                 **limits) -> None:
        super().__init__()
        self.features = _localisation(moving_channels + reference_channels, width)
        self.regress = nn.Linear(width * 16, 6)
        nn.init.zeros_(self.regress.weight)
        with torch.no_grad():
            self.regress.bias.copy_(torch.tensor(IDENTITY))

    def forward(self, moving: torch.Tensor, reference: torch.Tensor):
        theta = self.regress(self.features(torch.cat([moving, reference], dim=1))).view(-1, 2, 3)
        return warp(moving, theta), theta  # (B, C, H, W), (B, 2, 3)


@register("stn", "bounded")
class BoundedSTN(nn.Module):
    """Shift (px), rotation (degrees) and scale about the input's centre, each bounded by tanh."""

    def __init__(self, moving_channels: int, reference_channels: int, width: int = 32,
                 max_shift: float = 16.0, max_rotation: float = 5.0,
                 max_scale: float = 0.05) -> None:
        super().__init__()
        self.features = _localisation(moving_channels + reference_channels, width)
        self.regress = nn.Linear(width * 16, 4)  # (tx, ty, angle, scale), each in (-1, 1)
        nn.init.zeros_(self.regress.weight)
        nn.init.zeros_(self.regress.bias)
        self.register_buffer("limits", torch.tensor(
            [max_shift, max_shift, math.radians(max_rotation), max_scale]), persistent=False)

    def forward(self, moving: torch.Tensor, reference: torch.Tensor):
        raw = self.regress(self.features(torch.cat([moving, reference], dim=1)))
        params = torch.tanh(raw.float()) * self.limits  # (B, 4): px, px, radians, relative
        theta = pixel_theta(params, moving.shape[-2], moving.shape[-1])
        return warp(moving, theta), theta  # (B, C, H, W), (B, 2, 3)


def pixel_theta(params: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B, 4) (tx px, ty px, angle rad, scale - 1) -> (B, 2, 3) ``affine_grid`` theta.

    In pixels (x right, y down, c the centre) output pixel p samples the input at
    ``c + (1 + s) R(a) (p - c) + t``. With p - c = D p_n, D = diag(W/2, H/2), that is
    ``p_n -> D^-1 (1 + s) R(a) D p_n + D^-1 t`` in normalised coordinates.
    """
    tx, ty, angle, scale = params.unbind(1)
    cos, sin = torch.cos(angle) * (1 + scale), torch.sin(angle) * (1 + scale)
    half_w, half_h = width / 2, height / 2
    row_x = torch.stack([cos, -sin * half_h / half_w, tx / half_w], 1)
    row_y = torch.stack([sin * half_w / half_h, cos, ty / half_h], 1)
    return torch.stack([row_x, row_y], 1)


def sampling_points(theta: torch.Tensor, points: torch.Tensor, height: int,
                    width: int) -> torch.Tensor:
    """Where output pixel positions ``points`` (B, N, 2) sample the input under ``theta``."""
    size = points.new_tensor([width, height])
    normalised = 2 * points / size - 1
    out = normalised @ theta[:, :, :2].transpose(1, 2) + theta[:, None, :, 2]
    return (out + 1) * size / 2


def theta_translation_px(theta: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Translation of an affine_grid theta in pixels: (B, 2) as (dx, dy) of the sampling point."""
    return torch.stack([theta[:, 0, 2] * width / 2, theta[:, 1, 2] * height / 2], dim=1)
