"""The ways a density map can be misplaced, each as the correction that undoes it.

``candidates`` lists, for one map, every (name, params) worth scoring; ``apply`` returns the
corrected map, at whatever resolution the correction needs (the protocol resizes any shape).
Params are global to the split (a stride, a padding multiple, a shift), so a correction that
fits each image separately (which would flatter any model) is never offered; ``search.fit``
chooses them over the images, and for its test each image at the others' choice.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F

from ablate.diagnose.camera import invert_affine, warp_to_labels
from ablate.diagnose.scoring import resize_operator

STRIDES = (8, 16, 32)
PAD_MULTIPLES = (16, 32, 64)  # what padding code commonly rounds an input up to
PAD_SIDES = ("start", "centre", "end")
# Most specific first: when two corrections of one family score alike, the verdict names the
# earlier one, since a shift can mimic a padding offset but not the other way round, and a
# zero-filled shift is a roll whose wrapped part held nobody.
ORDER = ("hflip", "vflip", "rot180", "rot90", "rot270", "transpose", "reshape", "count-scale",
         "stride", "padding", "camera", "shift", "padded-shift", "roll")
# Corrections that move the content without turning it explain the same symptom in different
# words; the verdict must beat the best of the *other* families, not its own near-twins.
FAMILY = {name: "offset" for name in ("stride", "padding", "camera", "shift", "padded-shift",
                                      "roll")}


def transposed(shape: tuple[int, int], image_size: tuple[int, int]) -> bool:
    """Whether a (a, b) map is closer to the image's aspect ratio turned by 90 degrees."""
    (a, b), (height, width) = shape, image_size
    aspect = math.log(a / b)
    return abs(aspect + math.log(height / width)) < abs(aspect - math.log(height / width))


def implied_stride(shape: tuple[int, int], image_size: tuple[int, int]) -> int:
    """The power of two nearest to the input pixels per map row."""
    rows = shape[1] if transposed(shape, image_size) else shape[0]
    return 2 ** max(0, round(math.log2(image_size[0] / rows)))


def move(density: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """The map's content moved by (dy, dx) samples, zeros where it moved in from outside."""
    return F.pad(density, (dx, -dx, dy, -dy))


def _pad_cells(shape: tuple[int, int], image_size: tuple[int, int], multiple: int,
               side: str) -> tuple[int, int]:
    """Map samples of padding before the image (start, centre) or after it (end, negative)."""
    stride = implied_stride(shape, image_size)
    cells = [(-n % multiple) / stride for n in image_size]
    scale = {"start": 1.0, "centre": 0.5, "end": -1.0}[side]
    oy, ox = (int(scale * c) for c in cells)  # toward zero: half a sample is not a shift
    return oy, ox


def _oversized(shape: tuple[int, int], image_size: tuple[int, int]) -> bool:
    stride = implied_stride(shape, image_size)
    return any(m > math.ceil(n / stride) for m, n in zip(shape, image_size, strict=True))


def _padding(density: torch.Tensor, image_size: tuple[int, int], multiple: int, side: str):
    """Undo a map of an input padded to ``multiple`` on ``side`` but cropped as if it were not:
    an uncropped (larger) map is cut at the right offset, a cropped one is moved back."""
    shape = tuple(density.shape)
    oy, ox = _pad_cells(shape, image_size, multiple, side)
    if _oversized(shape, image_size):
        stride = implied_stride(shape, image_size)
        rows, cols = (math.ceil(n / stride) for n in image_size)
        oy, ox = max(oy, 0), max(ox, 0)
        return density[oy:oy + rows, ox:ox + cols]
    return move(density, -oy, -ox)


def _stride(density: torch.Tensor, image_size: tuple[int, int], stride: int) -> torch.Tensor:
    """The map read as if its stride were ``stride`` from the top-left corner: the part that
    covers the image, on a canvas of the image's size at that stride."""
    rows, cols = (math.ceil(n / stride) for n in image_size)
    canvas = density.new_zeros(rows, cols)
    a, b = min(rows, density.shape[0]), min(cols, density.shape[1])
    canvas[:a, :b] = density[:a, :b]
    return canvas


def _reshape(density: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """Undo ``view`` where ``permute`` was meant: the memory of a map laid out (w, h) was read
    as (h, w) (or the other way round), so read it back in the other axis order."""
    a, b = density.shape
    back = density.reshape(b, a)
    return back if transposed((a, b), image_size) else back.T


def _turned(density: torch.Tensor, image_size: tuple[int, int], k: int) -> torch.Tensor:
    """Undo a quarter turn (``k`` = -1) or a transpose (``k`` = 0) of a map that may have
    been resized back to the image's aspect ratio afterwards: it is first resized to the
    turned shape (keeping its total), so the turn lands it on the image's grid again."""
    if not transposed(tuple(density.shape), image_size) and density.shape[0] != density.shape[1]:
        h, w = density.shape
        resized = F.interpolate(density[None, None].to(torch.float64), size=(w, h),
                                mode="bilinear", align_corners=False)[0, 0]
        # (w, h) holds as many samples as (h, w): only the interpolation's rounding to undo.
        density = resized * (density.sum() / resized.sum().clamp_min(1e-12))
    return density.T if k == 0 else torch.rot90(density, k, (0, 1))


def full_map(density: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """The (H, W) map the protocol scores (``upsample_density``), as two matrix products."""
    (h, w), (height, width) = density.shape, image_size
    ratio = height / h
    rows, cols = resize_operator(h, height), resize_operator(w, width)
    return rows @ density.to(torch.float64) @ cols.T / (ratio * ratio)


def apply(name: str, params: dict[str, Any], density: torch.Tensor,
          image_size: tuple[int, int], affine: torch.Tensor | None = None) -> torch.Tensor:
    """The corrected map for one image; ``affine`` (thermal -> RGB) is needed by "camera"."""
    if name == "hflip":
        return density.flip(-1)
    if name == "vflip":
        return density.flip(-2)
    if name == "rot180":
        return density.flip(-2, -1)
    if name == "transpose":
        return _turned(density, image_size, 0)
    if name in ("rot90", "rot270"):  # the bug's turn (torch.rot90's k = 1 or 3), undone
        return _turned(density, image_size, -1 if name == "rot90" else 1)
    if name == "reshape":
        return _reshape(density, image_size)
    if name == "stride":
        return _stride(density, image_size, params["stride"])
    if name == "padding":
        return _padding(density, image_size, params["multiple"], params["side"])
    if name == "shift":
        return move(full_map(density, image_size), params["dy"], params["dx"])
    if name == "roll":  # whole-map moves are in map samples, up to half the map
        return torch.roll(density, (params["dy"], params["dx"]), (0, 1))
    if name == "padded-shift":
        return move(density, params["dy"], params["dx"])
    if name == "count-scale":
        return density / params["factor"]
    if name == "camera":
        undo = affine if params["frame"] == "rgb" else invert_affine(affine)
        return warp_to_labels(full_map(density, image_size), undo)
    raise KeyError(name)


def candidates(shape: tuple[int, int], image_size: tuple[int, int],
               has_affine: bool) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every discrete (name, params) worth scoring for a map of this shape (not the shift)."""
    for name in ("hflip", "vflip", "rot180", "rot90", "rot270", "transpose", "reshape"):
        yield name, {}
    own = implied_stride(shape, image_size)
    for stride in STRIDES:
        if stride != own:
            yield "stride", {"stride": stride}
    seen = set()
    for multiple in PAD_MULTIPLES:
        for side in PAD_SIDES:
            offset = _pad_cells(shape, image_size, multiple, side)
            # The same offset from another multiple, or none at all, is not a new candidate.
            effect = (offset, side) if _oversized(shape, image_size) else offset
            if effect not in seen and (any(offset) or _oversized(shape, image_size)):
                seen.add(effect)
                yield "padding", {"multiple": multiple, "side": side}
    if has_affine:
        # "rgb": the maps are in the RGB frame; "inverse" covers a displacement measured the
        # other way round (labels in the RGB frame, or an estimate of the opposite sign).
        yield from (("camera", {"frame": "rgb"}), ("camera", {"frame": "inverse"}))
