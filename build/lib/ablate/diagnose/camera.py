"""The other camera's frame: estimating the RGB-thermal displacement of a pair and undoing it.

RGBT-CC's labels live in the thermal frame and its RGB camera is displaced by a few to tens of
pixels, so a model that predicts where heads appear in the RGB image is off by that much, and
by a different amount in every image: no global shift can undo it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _edges(image: torch.Tensor) -> torch.Tensor:
    """Gradient magnitude of the grey image: edges are where RGB and pseudo-coloured thermal
    agree, while their intensities (dark clothes, warm skin) do not."""
    grey = image.to(torch.float64).mean(0)
    dy = F.pad(grey[1:] - grey[:-1], (0, 0, 0, 1))
    dx = F.pad(grey[:, 1:] - grey[:, :-1], (0, 1))
    magnitude = _blur(torch.hypot(dx, dy), sigma=2.0)
    height, width = grey.shape
    # A Hann window keeps the image border from dominating the spectrum.
    window = torch.outer(torch.hann_window(height, dtype=torch.float64),
                         torch.hann_window(width, dtype=torch.float64))
    return (magnitude - magnitude.mean()) * window


def _blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Blurred edges still overlap when the two sensors see an edge a pixel apart or with
    different sharpness; measured on synthetic pairs it halves the gross misestimates."""
    radius = int(3 * sigma)
    taps = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = kernel / kernel.sum()
    out = F.conv2d(image[None, None], kernel.view(1, 1, -1, 1), padding=(radius, 0))
    return F.conv2d(out, kernel.view(1, 1, 1, -1), padding=(0, radius))[0, 0]


def estimate_shift(rgb: torch.Tensor, thermal: torch.Tensor, max_shift: int = 64) -> torch.Tensor:
    """(tx, ty) px with the RGB image showing thermal pixel p at p + t, by phase correlation.

    The normalised cross-power spectrum of two shifted images is a pure phase ramp whose
    inverse transform peaks at the shift; searched within ``max_shift`` (and a quarter of the
    image) because a peak further out is wrap-around, not a displacement.
    """
    fixed, moving = torch.fft.rfft2(_edges(thermal)), torch.fft.rfft2(_edges(rgb))
    cross = moving * fixed.conj()
    surface = torch.fft.irfft2(cross / cross.abs().clamp_min(1e-12), s=rgb.shape[-2:])
    height, width = surface.shape
    ys = torch.fft.fftfreq(height, 1 / height).round().long()
    xs = torch.fft.fftfreq(width, 1 / width).round().long()
    reach = min(max_shift, height // 4, width // 4)
    allowed = (ys.abs()[:, None] <= reach) & (xs.abs()[None, :] <= reach)
    peak = int(torch.where(allowed, surface, -torch.inf).argmax())
    return torch.tensor([float(xs[peak % width]), float(ys[peak // width])], dtype=torch.float64)


def shift_affine(shift: torch.Tensor) -> torch.Tensor:
    """The 2x3 thermal -> RGB pixel map of a pure translation."""
    return torch.cat([torch.eye(2, dtype=torch.float64), shift.reshape(2, 1)], 1)


def invert_affine(affine: torch.Tensor) -> torch.Tensor:
    full = torch.cat([affine, affine.new_tensor([[0.0, 0.0, 1.0]])], 0)
    return torch.linalg.inv(full)[:2]


def warp_to_labels(full: torch.Tensor, affine: torch.Tensor) -> torch.Tensor:
    """A full-resolution (H, W) map from the RGB frame into the labels' thermal frame.

    ``affine`` maps thermal pixel p to RGB pixel q = A p (``model.data.synth.pixel_affine``);
    the corrected density at p is the predicted density at A p, times the area change |det|.
    """
    height, width = full.shape
    a = affine.to(torch.float64)
    ys = torch.arange(height, dtype=torch.float64)[:, None] + 0.5  # pixel centres, as the
    xs = torch.arange(width, dtype=torch.float64)[None, :] + 0.5  # data's coordinates are
    # q = A p as two broadcast sums: a (H, W, 2) x (2, 2) product costs 5 times more.
    grid = torch.stack([(a[0, 0] * xs + a[0, 1] * ys + a[0, 2]) * (2 / width) - 1,
                        (a[1, 0] * xs + a[1, 1] * ys + a[1, 2]) * (2 / height) - 1], -1)
    sampled = F.grid_sample(full[None, None].to(torch.float64), grid[None], mode="bilinear",
                            padding_mode="zeros", align_corners=False)[0, 0]
    return sampled * torch.linalg.det(affine[:, :2]).abs()
