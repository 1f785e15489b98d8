"""Bayesian loss with a background pseudo-point (Ma et al., "Bayesian Loss for Crowd Count
Estimation with Point Supervision", ICCV 2019), the density loss of IADM and BM.

Each output pixel's density is shared among the annotated points (and the background) by the
posterior of a Gaussian likelihood; each point's expected count should be 1 and the
background's 0. The background distance follows the public code: with m the distance from a
pixel to its nearest point and d = background_ratio * min(H, W), the background sits at
distance |d - m|, so it takes most of the mass of pixels more than d / 2 from every head.
As in the public code, min(H, W) is the short side of the uncropped image (480 on RGBT-CC, so
d = 72), not of the training crop (a 256 crop would give 38.4 and push the background twice as
close to every head).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from model.registry import register
from model.targets import inside_points

if TYPE_CHECKING:
    from model.config import LossConfig


def _pixel_centres(size: int, extent: int, like: torch.Tensor) -> torch.Tensor:
    """(size,) centres of the output pixels in input coordinates."""
    step = extent / size
    return (torch.arange(size, dtype=like.dtype, device=like.device) + 0.5) * step


def bayesian_image_loss(
    density: torch.Tensor,
    points: torch.Tensor,
    image_size: tuple[int, int],
    sigma: float,
    background_ratio: float,
    full_size: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Loss of one (h, w) map of an input of ``image_size`` against (N, 2) in-input points;
    sum of |target - expected|. ``full_size`` is the uncropped image's (H, W) (None: the
    input is the whole image), whose short side sets the background distance."""
    if points.shape[0] == 0:
        # No one to explain the mass: the whole predicted count is error (public code).
        return density.sum().abs()
    height, width = image_size
    h, w = density.shape
    ys = _pixel_centres(h, height, density)
    xs = _pixel_centres(w, width, density)
    dist2 = (points[:, 1, None, None] - ys[None, :, None]) ** 2 + (
        points[:, 0, None, None] - xs[None, None, :]
    ) ** 2  # (N, h, w)
    nearest = dist2.min(dim=0, keepdim=True).values.clamp(min=0).sqrt()  # (1, h, w)
    background = (background_ratio * min(full_size or image_size) - nearest) ** 2
    logits = -torch.cat([dist2, background]) / (2 * sigma**2)  # (N + 1, h, w)
    posterior = torch.softmax(logits, dim=0)
    expected = (posterior * density).flatten(1).sum(dim=1)  # (N + 1,)
    target = torch.ones_like(expected)
    target[-1] = 0
    return (target - expected).abs().sum()


class BayesianLoss(nn.Module):
    """Bayesian loss averaged over the batch; ``sigma`` is in input pixels (IADM/BM: 8)."""

    def __init__(self, sigma: float, background_ratio: float) -> None:
        super().__init__()
        self.sigma = sigma
        self.background_ratio = background_ratio

    def forward(
        self, density: torch.Tensor, points: list[torch.Tensor], image_size: tuple[int, int],
        full_sizes: list[tuple[int, int]] | None = None,
    ) -> torch.Tensor:
        density = density.float()
        full_sizes = full_sizes or [image_size] * len(points)
        losses = [
            bayesian_image_loss(
                density[i, 0], inside_points(p.to(density.device), image_size), image_size,
                self.sigma, self.background_ratio, full_sizes[i],
            )
            for i, p in enumerate(points)
        ]
        return torch.stack(losses).mean()


@register("density_loss", "bayesian")
def bayesian_density_loss(cfg: LossConfig) -> BayesianLoss:
    return BayesianLoss(cfg.bayes_sigma, cfg.bayes_background_ratio)
