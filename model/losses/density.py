"""Pixel-wise MSE against count-preserving Gaussian maps (the CSRNet-style density loss).

A "density_loss" registry entry is a factory ``(LossConfig) -> module`` whose module is called
as ``loss(density (B, 1, h, w), points [(N_i, 2)], image_size (H, W), full_sizes=None) ->
scalar``; ``full_sizes`` lists each pair's (H, W) before cropping (None: uncropped input).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from model.registry import register
from model.targets import target_like

if TYPE_CHECKING:
    from model.config import LossConfig


class MSEDensityLoss(nn.Module):
    """Squared error summed over the pixels of each map, averaged over the batch.

    A per-pixel mean would be about 1e-3 (the targets are sparse and peak well below 1), which
    makes weights such as 0.1 on the other terms meaningless; the per-image sum scales with the
    number of people, like the count and Bayesian losses it is weighted against.
    """

    def __init__(self, sigma: float) -> None:
        super().__init__()
        self.sigma = sigma

    def forward(
        self, density: torch.Tensor, points: list[torch.Tensor], image_size: tuple[int, int],
        full_sizes: list[tuple[int, int]] | None = None, target: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``target``, when given, is ``target_like(density, points, image_size, sigma)``; the
        Gaussian targets depend on the input alone, so ``full_sizes`` plays no part."""
        if target is None:
            target = target_like(density, points, image_size, self.sigma)
        return ((density.float() - target) ** 2).sum() / density.shape[0]


@register("density_loss", "mse")
def mse_density_loss(cfg: LossConfig) -> MSEDensityLoss:
    return MSEDensityLoss(cfg.density_sigma)
