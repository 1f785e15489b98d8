"""Vectorised drawing primitives for the synthetic RGB-T crowds.

Everything is drawn on a grid of pixel-centre coordinates (``xs``, ``ys``) in the thermal frame,
so a scene can be rendered on a canvas larger than the image (the RGB camera sees past the
thermal frame's border once it is displaced) and every feature lands at the same place whatever
the canvas size.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# Anchor colours of an inferno-like ramp (dark purple -> orange -> pale yellow), like the
# pseudo-colour palettes of thermal cameras; luminance rises monotonically with temperature.
_RAMP = torch.tensor(
    [
        [0, 0, 4],
        [40, 11, 84],
        [101, 21, 110],
        [159, 42, 99],
        [212, 72, 66],
        [245, 125, 21],
        [250, 193, 39],
        [252, 255, 164],
    ],
    dtype=torch.float32,
)


def pseudo_colour(heat: torch.Tensor) -> torch.Tensor:
    """(H, W) temperatures in [0, 1] -> (3, H, W) uint8 through the fixed ramp."""
    pos = heat.clamp(0, 1) * (len(_RAMP) - 1)
    lo = pos.floor().long().clamp(max=len(_RAMP) - 2)
    frac = (pos - lo).unsqueeze(-1)
    rgb = _RAMP[lo] * (1 - frac) + _RAMP[lo + 1] * frac  # (H, W, 3)
    return rgb.permute(2, 0, 1).round().to(torch.uint8)


def gaussians(
    xs: torch.Tensor,
    ys: torch.Tensor,
    centres: torch.Tensor,
    sigmas: torch.Tensor,
    amplitudes: torch.Tensor,
) -> torch.Tensor:
    """Sum of axis-aligned Gaussians, (N, 2) centres and sigmas -> (H, W).

    Separable, so the sum over N is one matrix product instead of an (N, H, W) tensor.
    """
    gx = torch.exp(-0.5 * ((xs[None, :] - centres[:, :1]) / sigmas[:, :1]) ** 2)  # (N, W)
    gy = torch.exp(-0.5 * ((ys[None, :] - centres[:, 1:]) / sigmas[:, 1:]) ** 2)  # (N, H)
    return torch.einsum("nh,nw->hw", gy * amplitudes[:, None], gx)


def rotated_gaussians(
    xs: torch.Tensor,
    ys: torch.Tensor,
    centres: torch.Tensor,
    sigmas: torch.Tensor,
    angles: torch.Tensor,
    amplitudes: torch.Tensor,
) -> torch.Tensor:
    """Sum of K elongated, rotated Gaussians -> (H, W); K is small (the warm distractors)."""
    dx = xs[None, None, :] - centres[:, 0, None, None]  # (K, 1, W)
    dy = ys[None, :, None] - centres[:, 1, None, None]  # (K, H, 1)
    cos, sin = torch.cos(angles)[:, None, None], torch.sin(angles)[:, None, None]
    u, v = dx * cos + dy * sin, -dx * sin + dy * cos
    z = (u / sigmas[:, 0, None, None]) ** 2 + (v / sigmas[:, 1, None, None]) ** 2
    return (amplitudes[:, None, None] * torch.exp(-0.5 * z)).sum(0)


def ellipses_over(
    canvas: torch.Tensor,
    origin: tuple[float, float],
    centres: torch.Tensor,
    radii: torch.Tensor,
    colours: torch.Tensor,
    split_colours: torch.Tensor | None = None,
) -> torch.Tensor:
    """Composite soft-edged ellipses over a (3, H, W) canvas whose pixel (0, 0) centre is at
    ``origin`` (x, y).

    ``colours`` (F, 3) fill each ellipse; ``split_colours`` (F, 3), if given, fills its lower
    half (shirt and trousers). Each ellipse is drawn on a small patch around it, all patches at
    once, and scatter-added into the canvas, so the cost scales with the figures, not the image.
    Overlaps blend by coverage.
    """
    if len(centres) == 0:
        return canvas
    _, height, width = canvas.shape
    half = int(math.ceil(float(radii.max()))) + 2
    offsets = torch.arange(-half, half + 1)
    cols = (centres[:, 0] - origin[0]).round().long()[:, None] + offsets  # (F, S)
    rows = (centres[:, 1] - origin[1]).round().long()[:, None] + offsets  # (F, S)
    dx2 = ((cols + origin[0] - centres[:, :1]) / radii[:, :1]) ** 2  # (F, S)
    dy2 = ((rows + origin[1] - centres[:, 1:]) / radii[:, 1:]) ** 2
    dist = torch.sqrt(dy2[:, :, None] + dx2[:, None, :])  # (F, S, S)
    # Edge about half a pixel wide whatever the ellipse size.
    alpha = torch.sigmoid((1 - dist) * 2 * radii[:, 0, None, None].clamp(min=1))
    on_canvas = ((rows >= 0) & (rows < height))[:, :, None] & ((cols >= 0) & (cols < width))[
        :, None, :
    ]
    alpha = alpha * on_canvas
    index = (
        rows.clamp(0, height - 1)[:, :, None] * width + cols.clamp(0, width - 1)[:, None, :]
    ).flatten()

    fill = colours[:, :, None].expand(-1, -1, rows.shape[1])  # (F, 3, S): colour per patch row
    if split_colours is not None:
        lower = (rows + origin[1]) > centres[:, 1:]
        fill = torch.where(lower[:, None, :], split_colours[:, :, None], fill)
    weighted = (alpha[:, None] * fill[..., None]).permute(1, 0, 2, 3).reshape(3, -1)
    colour_sum = torch.zeros(3, height * width).index_add_(1, index, weighted)
    alpha_sum = torch.zeros(height * width).index_add_(0, index, alpha.flatten())
    # log of the fraction of background still visible through all ellipses over a pixel
    log_clear = torch.zeros(height * width).index_add_(
        0, index, torch.log1p(-alpha.clamp(max=0.999)).flatten()
    )
    coverage = (1 - torch.exp(log_clear)).view(1, height, width)
    mean_colour = (colour_sum / alpha_sum.clamp(min=1e-6)).view(3, height, width)
    return canvas * (1 - coverage) + mean_colour * coverage


def smooth_field(
    generator: torch.Generator,
    xs: torch.Tensor,
    ys: torch.Tensor,
    extent: tuple[float, float],
    channels: int = 1,
    waves: int = 6,
) -> torch.Tensor:
    """A smooth random (channels, H, W) field in [-1, 1]: a sum of random plane waves.

    Defined over absolute coordinates, not the grid, so the same field comes out on any canvas.
    cos(ax + by + c) = cos(ax)cos(by + c) - sin(ax)sin(by + c) makes it two matrix products.
    """
    height, width = extent
    freq = torch.rand(channels, waves, 2, generator=generator) * 4 - 2  # cycles per image
    phase = torch.rand(channels, waves, generator=generator) * 2 * math.pi
    weight = torch.rand(channels, waves, generator=generator) + 0.2
    weight = weight / weight.sum(1, keepdim=True)
    ax = 2 * math.pi * freq[..., 0, None] / width * xs  # (C, K, W)
    by = 2 * math.pi * freq[..., 1, None] / height * ys + phase[..., None]  # (C, K, H)
    return torch.einsum(
        "ckh,ckw->chw", weight[..., None] * torch.cos(by), torch.cos(ax)
    ) - torch.einsum("ckh,ckw->chw", weight[..., None] * torch.sin(by), torch.sin(ax))


def upsampled_noise(generator: torch.Generator, shape: tuple[int, int, int], size: tuple[int, int]):
    """Low-resolution Gaussian noise upsampled bicubically: a smooth (C, H, W) displacement."""
    coarse = torch.randn(1, *shape, generator=generator)
    return F.interpolate(coarse, size=size, mode="bicubic", align_corners=False)[0]
