"""Known synthetic misalignment for the alignment warm-up (plan priority 6).

One modality is warped by a random rigid motion whose parameters are returned, so an alignment
module can be trained to undo a displacement of known size before it meets the real one.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def random_affine(
    images: torch.Tensor,
    max_shift: float = 16.0,
    max_rotation: float = 5.0,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Warp each image of (B, C, H, W) by its own random rotation and translation.

    Per image, a shift t = (tx, ty) with each component uniform in [-max_shift, max_shift] pixels
    and an angle a uniform in [-max_rotation, max_rotation] degrees are drawn from ``generator``
    (a CPU generator). In pixel coordinates (x right, y down, centre c = (W/2, H/2)) the content
    of input pixel p moves to

        q = R(a) (p - c) + c + t,    R(a) = [[cos a, -sin a], [sin a, cos a]]

    (positive a turns the content clockwise on screen). The returned ``theta`` (B, 2, 3) is the
    inverse map in F.affine_grid's normalised coordinates (align_corners=False, -1 and 1 are the
    outer edges of the border pixels): it takes an output location to the input location it
    samples, so ``warped == grid_sample(images, affine_grid(theta, size))`` with zeros where the
    content moved in from outside. uint8 input gives uint8 output (rounded), float gives float.
    """
    b, _, h, w = images.shape
    draws = torch.rand(b, 3, generator=generator) * 2 - 1
    shift = draws[:, :2] * max_shift  # (B, 2) pixels
    angle = draws[:, 2] * math.radians(max_rotation)
    cos, sin = torch.cos(angle), torch.sin(angle)
    rot_t = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], -2)  # R^T
    half = torch.tensor([w / 2, h / 2])
    # p - c = R^T (q - c - t); with x - c_x = x_n W / 2 that is p_n = D^-1 R^T D q_n - D^-1 R^T t.
    lin = rot_t * half[None, None, :] / half[None, :, None]
    offset = -(rot_t @ shift[:, :, None])[..., 0] / half
    theta = torch.cat([lin, offset[:, :, None]], -1).to(images.device)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    warped = F.grid_sample(
        images.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False
    )
    if images.dtype == torch.uint8:
        warped = warped.round().clamp(0, 255).to(torch.uint8)
    return warped, theta


def warp_points(points: torch.Tensor, theta: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Where (N, 2) input pixel points land in an image warped by ``theta`` (one 2x3 matrix).

    theta maps output -> input in normalised coordinates, so its inverse is applied.
    """
    full = torch.cat([theta, theta.new_tensor([[0.0, 0.0, 1.0]])], 0)
    inverse = torch.linalg.inv(full)[:2]
    size = points.new_tensor([width, height])
    normalised = 2 * points / size - 1
    out = normalised @ inverse[:, :2].T + inverse[:, 2]
    return (out + 1) * size / 2
