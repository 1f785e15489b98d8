"""The fixed extra displacement ``ablate robustness`` applies to the moving image.

Conventions are those of ``model.data.misalign.random_affine`` (pixel coordinates, x right,
y down, centre c = (W/2, H/2)), with a fixed motion instead of a random one: the content of
pixel p moves to

    q = R(a) (p - c) + c + (s, s)

i.e. ``shift`` s pixels right AND s pixels down (along the diagonal, s * sqrt(2) px in all)
and a rotation by ``rotation`` a degrees about the centre (positive a turns the content
clockwise on screen). Content that moves in from outside the frame is zero, which after
normalisation is the dataset mean, as in the alignment warm-up.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def displacement_theta(shift: float, rotation: float, height: int, width: int) -> torch.Tensor:
    """The (1, 2, 3) F.affine_grid matrix (output -> input, normalised, align_corners=False)
    of the motion above; ``warp_points`` of misalign applies its inverse to points."""
    angle = math.radians(rotation)
    cos, sin = math.cos(angle), math.sin(angle)
    rot_t = torch.tensor([[cos, sin], [-sin, cos]], dtype=torch.float64)  # R^T
    half = torch.tensor([width / 2, height / 2], dtype=torch.float64)
    # p - c = R^T (q - c - t) with x - c_x = x_n W / 2: p_n = D^-1 R^T D q_n - D^-1 R^T t.
    lin = rot_t * half[None, :] / half[:, None]
    offset = -(rot_t @ torch.tensor([shift, shift], dtype=torch.float64)) / half
    return torch.cat([lin, offset[:, None]], 1)[None].float()


def displace(images: torch.Tensor, shift: float, rotation: float) -> torch.Tensor:
    """Every image of the (B, C, H, W) float batch moved as above in one grid_sample call.

    The identity is returned untouched, so shift 0 and rotation 0 reproduce the plain
    evaluation bit for bit (a resampling would round)."""
    if shift == 0 and rotation == 0:
        return images
    b, _, h, w = images.shape
    theta = displacement_theta(shift, rotation, h, w).to(images.device).expand(b, 2, 3)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid.to(images.dtype), mode="bilinear", padding_mode="zeros",
                         align_corners=False)
