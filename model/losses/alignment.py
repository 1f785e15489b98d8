"""Alignment terms: supervised by a known displacement, or unsupervised across modalities.

Every map here is in input pixels (x right, y down; pixel c spans [c, c + 1)) and is a 3x3
homogeneous matrix taking a reference pixel to where the same content is in the moving image:
what the STN's sampling grid, followed by the offset field, should reproduce.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from model.layers.stn import sampling_points
from model.output import ModelOutput

GRID_POINTS = 8  # per side: where the STN's sampling map is compared with the known one


def homogeneous(maps: torch.Tensor) -> torch.Tensor:
    """(B, 2, 3) -> (B, 3, 3)."""
    last = maps.new_tensor([0.0, 0.0, 1.0]).expand(len(maps), 1, 3)
    return torch.cat([maps, last], dim=1)


def theta_to_pixels(theta: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B, 2, 3) ``affine_grid`` theta (output -> input, align_corners=False) as a (B, 3, 3)
    pixel map: N^-1 theta N with N(x) = 2 x / size - 1."""
    n = theta.new_tensor([[2 / width, 0.0, -1.0], [0.0, 2 / height, -1.0], [0.0, 0.0, 1.0]])
    return torch.linalg.inv(n) @ homogeneous(theta.float()) @ n


def known_map(thermal_to_rgb: torch.Tensor | None, injected: torch.Tensor | None,
              moving_is_rgb: bool) -> torch.Tensor | None:
    """(B, 3, 3) reference pixel -> moving pixel, or None when nothing is known.

    ``thermal_to_rgb`` (B, 2, 3) is the data's own displacement (None: unknown, taken as
    registered when a displacement was injected); ``injected`` (B, 3, 3) is the map with which
    the warm-up resampled the moving image (new(p) = old(T p)), so content at old position q
    is now at T^-1 q.
    """
    if thermal_to_rgb is None and injected is None:
        return None
    data = None
    if thermal_to_rgb is not None:
        data = homogeneous(thermal_to_rgb.float())
        data = data if moving_is_rgb else torch.linalg.inv(data)
    if injected is None:
        return data
    undo = torch.linalg.inv(injected.float())
    return undo if data is None else undo @ data


def _grid(height: int, width: int, n: int, device: torch.device) -> torch.Tensor:
    """(n*n, 2) pixel centres of an n x n grid of cells over the image."""
    xs = (torch.arange(n, device=device) + 0.5) * width / n
    ys = (torch.arange(n, device=device) + 0.5) * height / n
    return torch.stack(torch.meshgrid(xs, ys, indexing="xy"), -1).reshape(-1, 2)


def _apply(maps: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """(B, 3, 3) maps on (B, N, 2) points."""
    return points @ maps[:, :2, :2].transpose(1, 2) + maps[:, None, :2, 2]


def supervised_alignment(output: ModelOutput, target: torch.Tensor,
                         size: tuple[int, int]) -> torch.Tensor | None:
    """Mean (pseudo-Huber) pixel distance between where the model samples the moving image
    and where the known ``target`` (B, 3, 3) says the content is: the STN's map on a grid of
    points, and the offset field's combined map (STN frozen for it, so it learns what the STN
    left) at every field pixel. None when the model has neither."""
    height, width = size
    terms = []
    if output.theta is not None:
        points = _grid(height, width, GRID_POINTS, target.device).expand(len(target), -1, -1)
        predicted = sampling_points(output.theta.float(), points, height, width)
        terms.append(_distance(predicted, _apply(target, points)))
    if output.displacement is not None:
        terms.append(_field_error(output, target, size))
    return torch.stack(terms).sum() if terms else None


def _field_error(output: ModelOutput, target: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    field = output.displacement.float()  # (B, 2, h, w) feature pixels
    height, width = size
    b, _, h, w = field.shape
    stride = field.new_tensor([width / w, height / h])
    ys, xs = torch.meshgrid(torch.arange(h, device=field.device),
                            torch.arange(w, device=field.device), indexing="ij")
    centres = (torch.stack([xs, ys], -1).reshape(-1, 2).float() + 0.5) * stride  # (h*w, 2)
    moved = centres + field.flatten(2).transpose(1, 2) * stride  # (B, h*w, 2)
    if output.theta is not None:
        moved = sampling_points(output.theta.detach().float(), moved, height, width)
    return _distance(moved, _apply(target, centres.expand(b, -1, -1)))


def _distance(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean pseudo-Huber distance in px: ~|d| - 1 far off, ~|d|^2 / 2 within a pixel, so the
    gradient fades once aligned instead of pushing at unit size forever (it shares the
    gradient-norm clip with the counting terms)."""
    squared = ((predicted - target) ** 2).sum(-1)
    return ((squared + 1).sqrt() - 1).mean()


def _gradient_magnitude(images: torch.Tensor) -> torch.Tensor:
    grey = F.avg_pool2d(images.float().mean(1, keepdim=True), 2)
    dx = grey[..., :, 1:] - grey[..., :, :-1]
    dy = grey[..., 1:, :] - grey[..., :-1, :]
    return (dx[..., :-1, :] ** 2 + dy[..., :, :-1] ** 2 + 1e-12).sqrt()


def gradient_ncc(warped: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """1 - normalised cross-correlation of the gradient magnitudes, per image, averaged.

    Edges (a person's outline) show in both modalities where intensities do not agree, so the
    gradient magnitudes correlate best when the images are registered."""
    a = _gradient_magnitude(warped).flatten(1)
    b = _gradient_magnitude(reference).flatten(1)
    a = (a - a.mean(1, keepdim=True)) / (a.std(1, keepdim=True, unbiased=False) + 1e-6)
    b = (b - b.mean(1, keepdim=True)) / (b.std(1, keepdim=True, unbiased=False) + 1e-6)
    return 1 - (a * b).mean()
