"""Pixel-wise MSE against count-preserving Gaussian maps (the CSRNet-style density loss)."""

from __future__ import annotations

import torch
from torch import nn

from model.targets import target_like


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
        target: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``target``, when given, is ``target_like(density, points, image_size, sigma)``."""
        if target is None:
            target = target_like(density, points, image_size, self.sigma)
        return ((density.float() - target) ** 2).sum() / density.shape[0]
