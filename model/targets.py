"""Count-preserving Gaussian density targets at the prediction's resolution."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from model.game import check_points


def inside_points(points: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """The (x, y) points with 0 <= x < W and 0 <= y < H, as float32.

    RGBT-CC has labels on and beyond the border, and random crops cut people off; a point
    outside the input cannot be counted by the network, so training drops it.
    """
    height, width = image_size
    points = check_points(points).to(torch.float32)
    x, y = points[:, 0], points[:, 1]
    return points[(x >= 0) & (x < width) & (y >= 0) & (y < height)]


def _kernel(sigma: float, like: torch.Tensor) -> torch.Tensor:
    """Normalised 1-D Gaussian of the given sigma (in output pixels), radius 3 sigma, >= 1."""
    radius = max(1, math.ceil(3 * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=like.dtype, device=like.device)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    return kernel / kernel.sum()


def _blur(maps: torch.Tensor, ky: torch.Tensor, kx: torch.Tensor) -> torch.Tensor:
    """Separable zero-padded blur of (B, 1, h, w) maps."""
    maps = F.conv2d(maps, ky.view(1, 1, -1, 1), padding=(ky.numel() // 2, 0))
    return F.conv2d(maps, kx.view(1, 1, 1, -1), padding=(0, kx.numel() // 2))


def _retained(n: int, kernel: torch.Tensor) -> torch.Tensor:
    """(n,) share of a kernel centred on each index that stays inside [0, n) after zero padding."""
    ones = torch.ones(1, 1, n, dtype=kernel.dtype, device=kernel.device)
    return F.conv1d(ones, kernel.view(1, 1, -1), padding=kernel.numel() // 2).view(n)


def gaussian_density(
    points: list[torch.Tensor],
    image_size: tuple[int, int],
    stride: float,
    sigma: float,
    out_size: tuple[int, int] | None = None,
) -> torch.Tensor:
    """(B, 1, h, w) Gaussian density whose every in-image point has mass exactly 1.

    ``out_size`` defaults to (H // stride, W // stride); pass the prediction's shape so that
    target and prediction share one grid (its cells then tile the image exactly, with the
    per-axis strides H / h and W / w). Each point goes to the grid cell that holds it and is
    blurred with a normalised Gaussian of ``sigma`` input pixels. Near a border part of the
    kernel falls outside the map, so the point's splat weight is raised by the inverse of the
    share that stays inside; every image then sums to its number of in-image points, which the
    local-count loss and any count-based check rely on.
    """
    if not points:
        raise ValueError("points=[] is not valid; a batch needs at least one image")
    if not sigma > 0 or not stride > 0:
        raise ValueError(f"sigma={sigma!r}, stride={stride!r} are not valid; both must be > 0")
    height, width = int(image_size[0]), int(image_size[1])
    h, w = out_size if out_size is not None else (int(height // stride), int(width // stride))
    if h < 1 or w < 1:
        raise ValueError(f"out_size={(h, w)!r} is not valid for image_size={(height, width)!r}")
    for p in points:  # shapes are host metadata: checking them costs no device sync
        if p.dim() != 2 or p.shape[1] != 2:
            raise ValueError(f"points of shape {tuple(p.shape)} are not valid; expected (N, 2)")
    # Autocast would blur in bf16 and break the exact per-point mass of 1.
    with torch.autocast(device_type=points[0].device.type, enabled=False):
        return _splat_and_blur(points, (h, w), (height, width), sigma)


def target_like(
    density: torch.Tensor, points: list[torch.Tensor], image_size: tuple[int, int], sigma: float
) -> torch.Tensor:
    """The Gaussian target on the grid of the prediction ``density`` (B, 1, h, w)."""
    return gaussian_density(
        [p.to(density.device) for p in points], image_size,
        stride=image_size[0] / density.shape[-2], sigma=sigma,
        out_size=(int(density.shape[-2]), int(density.shape[-1])),
    )


def _splat_and_blur(
    points: list[torch.Tensor], out_size: tuple[int, int], image_size: tuple[int, int],
    sigma: float,
) -> torch.Tensor:
    """The whole batch in one pass: points outside the image get weight 0 instead of being
    filtered out, so no step waits on the device for a mask's size (one sync per image before)."""
    (h, w), (height, width) = out_size, image_size
    all_points = torch.cat(points).to(torch.float32)
    like = all_points
    ky, kx = _kernel(sigma * h / height, like), _kernel(sigma * w / width, like)
    image = torch.repeat_interleave(
        torch.arange(len(points), device=like.device),
        torch.tensor([len(p) for p in points], device=like.device),
    )
    x, y = all_points[:, 0], all_points[:, 1]
    inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
    # Clamp guards x * w / W rounding up to w for x just below W (and parks outside points).
    cx = (x * (w / width)).floor().nan_to_num(0).long().clamp(0, w - 1)
    cy = (y * (h / height)).floor().nan_to_num(0).long().clamp(0, h - 1)
    weight = inside / (_retained(h, ky)[cy] * _retained(w, kx)[cx])
    flat = torch.zeros(len(points) * h * w, dtype=like.dtype, device=like.device)
    flat.index_add_(0, (image * h + cy) * w + cx, weight)
    return _blur(flat.view(len(points), 1, h, w), ky, kx)
