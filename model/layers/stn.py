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
    """Shift (px), rotation (degrees) and scale about the input's centre, each bounded.

    The localisation net matches features instead of regressing the transform from pooled
    features (which barely learned a 16 px shift): per modality, a small conv net at stride 4;
    at every reference position, a softmax over the correlations with the moving features
    within +-``max_shift`` px gives where that content sits in the moving image; a weighted
    least-squares similarity transform through those matches gives shift, rotation and
    scale, each squashed into its bound. A gate, shut at init, scales the transform, so the
    module is the identity at init and learns how far to trust the matches.
    """

    def __init__(self, moving_channels: int, reference_channels: int, width: int = 16,
                 max_shift: float = 16.0, max_rotation: float = 5.0,
                 max_scale: float = 0.05) -> None:
        super().__init__()
        self.moving_net = _matcher(moving_channels, width)
        self.reference_net = _matcher(reference_channels, width)
        self.radius = max(1, math.ceil(max_shift / MATCH_STRIDE))
        self.temperature = nn.Parameter(torch.tensor(10.0))
        self.vote_temperature = nn.Parameter(torch.tensor(3.0))
        self.gate = nn.Parameter(torch.zeros(()))
        self.register_buffer("limits", torch.tensor(
            [max_shift, max_shift, math.radians(max_rotation), max_scale]), persistent=False)

    def forward(self, moving: torch.Tensor, reference: torch.Tensor):
        h, w = moving.shape[-2:]
        scores = correlate(self.reference_net(reference), self.moving_net(moving), self.radius)
        flow, weight = soft_matches(scores, self.radius, self.temperature)
        fitted = similarity_fit(flow * MATCH_STRIDE, weight, (h, w))  # (B, 4) unbounded
        # The shift from the scores summed over the image: one peak that every structure seen
        # by both cameras votes for, where per-pixel matches on blank ground pull towards 0.
        votes = scores.mean(-1, keepdim=True)  # (B, (2r+1)^2, 1)
        # Standardised: averaging leaves the peak shallow, whatever the features' scale.
        votes = (votes - votes.mean(1, keepdim=True)) / (votes.std(1, keepdim=True) + 1e-6)
        shift = soft_argmax(votes, self.radius, self.vote_temperature)
        fitted = torch.cat([shift[..., 0] * MATCH_STRIDE, fitted[:, 2:]], 1)
        limits = self.limits.clamp(min=1e-6)
        bounded = limits * torch.tanh(fitted / limits)
        gain = torch.tanh(self.gate * GATE_RATE)
        # Forward: gain x transform (the identity while the gate is shut). Backward: the matcher
        # learns as if the gate were open, else random matches at init would keep it shut and
        # the shut gate would starve the matcher of gradient.
        params = gain * bounded + (1 - gain.detach()) * (bounded - bounded.detach())
        theta = pixel_theta(params, h, w)
        return warp(moving, theta), theta  # (B, C, H, W), (B, 2, 3)


MATCH_STRIDE = 4  # px per feature pixel of the matcher
# Adam moves a parameter by about lr per step: a gate that starts shut should open within tens
# of steps, not the thousands a plain 0 -> 1 parameter would take at lr 1e-3.
GATE_RATE = 50.0


def _matcher(channels: int, width: int) -> nn.Sequential:
    # Instance-normalised input: the two cameras' intensity scales have nothing in common.
    return nn.Sequential(
        nn.InstanceNorm2d(channels),
        nn.Conv2d(channels, width, 3, stride=2, padding=1), nn.BatchNorm2d(width),
        nn.ReLU(inplace=True),
        nn.Conv2d(width, width, 3, stride=2, padding=1), nn.BatchNorm2d(width),
        nn.ReLU(inplace=True),
        nn.Conv2d(width, width, 3, padding=1),
    )


def correlate(reference: torch.Tensor, moving: torch.Tensor, radius: int) -> torch.Tensor:
    """Cosine similarity of every reference feature pixel with the moving ones in its
    (2r+1)^2 window: (B, (2r+1)^2, h*w), displacements in row-major (dy, dx) order."""
    b, c, h, w = reference.shape
    side = 2 * radius + 1
    ref = F.normalize(reference.float(), dim=1)
    mov = F.normalize(moving.float(), dim=1)
    windows = F.unfold(mov, side, padding=radius).view(b, c, side * side, h * w)
    return (ref.flatten(2)[:, :, None] * windows).sum(1)


def soft_argmax(scores: torch.Tensor, radius: int, temperature: torch.Tensor) -> torch.Tensor:
    """(B, (2r+1)^2, N) scores -> expected (dx, dy) per column, (B, 2, N), feature pixels."""
    return _expected(torch.softmax(scores * temperature, dim=1), radius)


def _expected(prob: torch.Tensor, radius: int) -> torch.Tensor:
    """The mean displacement under (B, (2r+1)^2, N) probabilities: (B, 2, N) as (dx, dy)."""
    steps = torch.arange(-radius, radius + 1, device=prob.device, dtype=prob.dtype)
    dy, dx = torch.meshgrid(steps, steps, indexing="ij")
    return torch.stack([(prob * dx.reshape(1, -1, 1)).sum(1),
                        (prob * dy.reshape(1, -1, 1)).sum(1)], 1)


def soft_matches(scores: torch.Tensor, radius: int,
                 temperature: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per reference feature pixel: the expected displacement (B, 2, h*w) and a confidence
    (B, h*w), the softmax's largest probability."""
    prob = torch.softmax(scores * temperature, dim=1)  # one softmax for both: (B, side^2, N)
    return _expected(prob, radius), prob.max(1).values


def similarity_fit(flow: torch.Tensor, weight: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Weighted least squares of q = (1 + a) (p - c) + b J (p - c) + c + t through the matches
    p -> p + flow(p), flow (B, 2, h*w) px: returns (tx, ty, angle, scale - 1), (B, 4)."""
    b, _, n = flow.shape
    height, width = size
    h, w = _grid_shape(n, size)
    ys, xs = torch.meshgrid(torch.arange(h, device=flow.device, dtype=flow.dtype),
                            torch.arange(w, device=flow.device, dtype=flow.dtype), indexing="ij")
    x = ((xs + 0.5) * width / w - width / 2).reshape(-1)  # p - c, px
    y = ((ys + 0.5) * height / h - height / 2).reshape(-1)
    one, zero = torch.ones_like(x), torch.zeros_like(x)
    # Rows for the u and v components of the displacement: unknowns (a, b, tx, ty).
    design = torch.cat([torch.stack([x, -y, one, zero], 1), torch.stack([y, x, zero, one], 1)])
    target = torch.cat([flow[:, 0], flow[:, 1]], 1)  # (B, 2N)
    wts = torch.cat([weight, weight], 1)[..., None]  # (B, 2N, 1)
    normal = design.T @ (wts * design) + 1e-3 * torch.eye(4, device=flow.device)
    solution = torch.linalg.solve(normal, design.T @ (wts[..., 0] * target)[..., None])[..., 0]
    a, rot, tx, ty = solution.unbind(1)
    angle = torch.atan2(rot, 1 + a)
    scale = torch.hypot(1 + a, rot) - 1
    return torch.stack([tx, ty, angle, scale], 1)


def _grid_shape(n: int, size: tuple[int, int]) -> tuple[int, int]:
    """(h, w) of the matcher's grid over an input of ``size``: its convs halve twice (ceil)."""
    h, w = -(-size[0] // MATCH_STRIDE), -(-size[1] // MATCH_STRIDE)
    assert h * w == n, (h, w, n)
    return h, w


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
