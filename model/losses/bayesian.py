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

import math
from typing import TYPE_CHECKING

import torch
from torch import nn

from model.registry import register

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
    """Loss of one (h, w) map of an input of ``image_size`` against (N, 2) points: the sum
    of |target - expected|. ``full_size`` is the uncropped image's (H, W) (None: the input is
    the whole image), whose short side sets the background distance."""
    return bayesian_batch_loss(density[None], [points], image_size, sigma, background_ratio,
                               [full_size or image_size])[0]


def _pad_points(points: list[torch.Tensor], image_size: tuple[int, int], like: torch.Tensor):
    """(B, N, 2) points of every image padded to the longest list, and the (B, N) mask of the
    real ones inside the input: one tensor, no per-image masking (and no host sync)."""
    padded = torch.nn.utils.rnn.pad_sequence(
        [p.to(like.device, like.dtype).reshape(-1, 2) for p in points], batch_first=True)
    counts = torch.tensor([len(p) for p in points], device=like.device)
    real = torch.arange(padded.shape[1], device=like.device)[None] < counts[:, None]
    x, y = padded[..., 0], padded[..., 1]
    # As inside_points: a head outside the crop cannot be counted by the network.
    inside = (x >= 0) & (x < image_size[1]) & (y >= 0) & (y < image_size[0])
    return padded, real & inside


def bayesian_batch_loss(
    density: torch.Tensor,
    points: list[torch.Tensor],
    image_size: tuple[int, int],
    sigma: float,
    background_ratio: float,
    full_sizes: list[tuple[int, int]] | None = None,
) -> torch.Tensor:
    """(B,) losses of (B, h, w) maps of inputs of ``image_size`` against B lists of (N_i, 2)
    points (those outside the input are dropped); ``full_sizes``: each uncropped (H, W)."""
    batch, h, w = density.shape
    pts, mask = _pad_points(points, image_size, density)  # (B, N, 2), (B, N)
    ys = _pixel_centres(h, image_size[0], density)
    xs = _pixel_centres(w, image_size[1], density)
    dist2 = (pts[..., 1, None, None] - ys[:, None]) ** 2 + (
        pts[..., 0, None, None] - xs[None, :]
    ) ** 2  # (B, N, h, w)
    dist2 = dist2.masked_fill(~mask[..., None, None], math.inf)  # padding takes no posterior
    nearest = torch.cat([dist2, torch.full_like(density[:, None], math.inf)], dim=1).amin(1)
    # An image without points: the background alone takes every pixel (its logit need only be
    # finite), so its loss is the whole predicted count, as in the public code.
    nearest = torch.where(mask.any(dim=1)[:, None, None], nearest.clamp(min=0), 0.0).sqrt()
    short = torch.tensor([min(s) for s in (full_sizes or [image_size] * batch)],
                         dtype=density.dtype, device=density.device)
    background = (background_ratio * short[:, None, None] - nearest) ** 2  # (B, h, w)
    logits = -torch.cat([dist2, background[:, None]], dim=1) / (2 * sigma**2)  # (B, N + 1, h, w)
    posterior = torch.softmax(logits, dim=1)
    expected = (posterior * density[:, None]).flatten(2).sum(dim=2)  # (B, N + 1)
    keep = torch.cat([mask, mask.new_ones(batch, 1)], dim=1)
    target = torch.cat([mask.to(density.dtype), density.new_zeros(batch, 1)], dim=1)
    return ((target - expected).abs() * keep).sum(dim=1)


class BayesianLoss(nn.Module):
    """Bayesian loss averaged over the batch (all images in one pass); ``sigma`` is in input
    pixels (IADM/BM: 8)."""

    def __init__(self, sigma: float, background_ratio: float) -> None:
        super().__init__()
        self.sigma = sigma
        self.background_ratio = background_ratio

    def forward(
        self, density: torch.Tensor, points: list[torch.Tensor], image_size: tuple[int, int],
        full_sizes: list[tuple[int, int]] | None = None,
    ) -> torch.Tensor:
        losses = bayesian_batch_loss(density[:, 0].float(), points, image_size, self.sigma,
                                     self.background_ratio, full_sizes)
        return losses.mean()


@register("density_loss", "bayesian")
def bayesian_density_loss(cfg: LossConfig) -> BayesianLoss:
    return BayesianLoss(cfg.bayes_sigma, cfg.bayes_background_ratio)
