"""Joint random crop and horizontal flip of RGB, thermal and head points.

The random parameters are drawn for a whole batch at once from the caller's generator (so an
epoch is reproducible whatever the number of workers), then applied per pair with
torchvision.transforms.v2 on tv_tensors (Image, KeyPoints), or, for a set kept on the GPU, as one
batched gather whose output matches the per-pair path exactly.

Coordinates: a label x in [c, c + 1) lies on pixel column c (the protocol rasterises int(x)),
while torchvision's KeyPoints put pixel c's centre at x = c. The points are shifted by half a
pixel into torchvision's convention and back, so a flip maps x to W - x and keeps a point on its
pixel (a point exactly on a pixel's left edge lands on the right edge of the mirrored pixel,
which int() assigns to its neighbour: no mirror can keep edge points on both sides).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torchvision.transforms.v2.functional as TF
from torchvision import tv_tensors

from model.data.io import inside


@dataclass
class CropParams:
    """One batch of crop windows: top/left may be negative when the image is smaller than the
    crop (it then sits at a random offset inside a zero-padded crop)."""

    tops: torch.Tensor  # (B,) long
    lefts: torch.Tensor  # (B,) long
    flips: torch.Tensor  # (B,) bool
    size: int


def crop_params(
    sizes: torch.Tensor, crop: int, hflip: bool, generator: torch.Generator
) -> CropParams:
    """Draw crop windows for images of (B, 2) sizes (H, W), uniformly over valid offsets."""
    spans = sizes.long() - crop  # (B, 2): >= 0 crop inside the image, < 0 pad around it
    low, high = spans.clamp(max=0), spans.clamp(min=0)
    draws = torch.rand(len(sizes), 3, generator=generator)
    offsets = low + (draws[:, :2] * (high - low + 1)).floor().long().clamp(max=high - low)
    flips = (draws[:, 2] < 0.5) & hflip
    return CropParams(offsets[:, 0], offsets[:, 1], flips, crop)


def crop_flip_points(
    points: torch.Tensor, size: tuple[int, int], top: int, left: int, flip: bool, crop: int
) -> torch.Tensor:
    """(N, 2) points of an image of ``size`` -> points in the crop; those leaving it dropped."""
    keypoints = tv_tensors.KeyPoints(points - 0.5, canvas_size=size)  # torchvision convention
    keypoints = TF.crop(keypoints, top=top, left=left, height=crop, width=crop)
    # Drop in our own convention before flipping, so the kept set depends on the crop only.
    keep = inside(keypoints.as_subclass(torch.Tensor) + 0.5, crop, crop)
    keypoints = tv_tensors.wrap(keypoints[keep], like=keypoints)
    if flip:
        keypoints = TF.horizontal_flip(keypoints)
    out = keypoints.as_subclass(torch.Tensor) + 0.5
    # A point exactly on the crop's left edge flips onto x == crop: keep it on the last column.
    return out.clamp_(max=crop - 1e-3) if flip else out


def crop_flip(
    rgb: torch.Tensor,
    thermal: torch.Tensor,
    points: torch.Tensor,
    top: int,
    left: int,
    flip: bool,
    crop: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One pair through the same crop window and flip; out-of-image areas are zero."""
    images = [tv_tensors.Image(rgb), tv_tensors.Image(thermal)]
    images = [TF.crop(im, top=top, left=left, height=crop, width=crop) for im in images]
    if flip:
        images = [TF.horizontal_flip(im) for im in images]
    size = (int(rgb.shape[-2]), int(rgb.shape[-1]))
    out_points = crop_flip_points(points, size, top, left, flip, crop)
    return images[0].as_subclass(torch.Tensor), images[1].as_subclass(torch.Tensor), out_points


def gather_crops(
    stack: torch.Tensor, sizes: torch.Tensor, index: torch.Tensor, params: CropParams
) -> torch.Tensor:
    """Batched crop + flip of images kept on one device, as a single gather.

    ``stack`` (N, C, Hmax, Wmax) holds every image of a split top-left aligned, ``sizes`` (N, 2)
    their true (H, W). Pixels outside an image's true extent come out zero, as in ``crop_flip``.
    """
    device = stack.device
    ar = torch.arange(params.size, device=device)
    tops, lefts = params.tops.to(device), params.lefts.to(device)
    flips = params.flips.to(device)
    rows = tops[:, None] + ar  # (B, crop)
    cols = lefts[:, None] + torch.where(flips[:, None], params.size - 1 - ar, ar)
    h, w = sizes[index, 0, None], sizes[index, 1, None]
    valid = ((rows >= 0) & (rows < h))[:, None, :, None] & ((cols >= 0) & (cols < w))[
        :, None, None, :
    ]
    channels = torch.arange(stack.shape[1], device=device)[None, :, None, None]
    out = stack[
        index[:, None, None, None],
        channels,
        rows.clamp(0, stack.shape[2] - 1)[:, None, :, None],
        cols.clamp(0, stack.shape[3] - 1)[:, None, None, :],
    ]
    return out * valid


def crop_flip_map(affine: torch.Tensor, top: int, left: int, flip: bool, crop: int) -> torch.Tensor:
    """A pixel map (2, 3) of the whole image (``q = A @ (x, y, 1)``) in a crop's coordinates.

    Both images of a pair are cropped by the same window and flipped together, so a point p of
    the crop is p + o in the image (o = (left, top)) and its image A(p + o) is A(p + o) - o in
    the crop; a flip mirrors both ends, x -> crop - x.
    """
    full = torch.cat([affine.float(), torch.tensor([[0.0, 0.0, 1.0]])])
    shift = torch.tensor([[1.0, 0.0, float(left)], [0.0, 1.0, float(top)], [0.0, 0.0, 1.0]])
    out = torch.linalg.inv(shift) @ full @ shift
    if flip:
        mirror = torch.tensor([[-1.0, 0.0, float(crop)], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
        out = mirror @ out @ mirror
    return out[:2]
