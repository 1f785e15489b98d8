"""Maps with a known answer, for the tests and the false-positive benchmark of ``diagnose``.

Labels are random heads denser toward the top of the image (as a camera looking down a
street sees them, so that no flip leaves a crowd where it was); a label map blurs them at
stride 8, a model-like map adds what a trained model gets wrong without any coordinate bug:
heads a few pixels off, a per-image count error and a faint background. ``CORRUPTIONS`` are
the bugs ``ablate diagnose`` must name, each as the user's code would commit it on a map.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from ablate.diagnose.camera import shift_affine
from ablate.diagnose.scoring import truth_cells
from ablate.diagnose.truth import Truth
from model.game import point_map
from model.targets import gaussian_density

STRIDE, SIGMA = 8, 4.0  # the label maps' stride and blur (input px)
CAMERA_SHIFT = 12.0  # px: each pair's RGB-thermal displacement is drawn within +-this


def truths(n: int, size: tuple[int, int], people: tuple[int, int],
           seed: int = 0) -> list[Truth]:
    """``n`` images of ``size`` (H, W) with ``people`` (low, high) heads each."""
    generator = torch.Generator().manual_seed(seed)
    height, width = size
    out = []
    for index in range(n):
        count = int(torch.randint(people[0], people[1] + 1, (1,), generator=generator))
        x, y = torch.rand(2, count, generator=generator, dtype=torch.float64)
        points = torch.stack([x * width, y ** 1.5 * height], 1)  # denser toward the top
        shift = (torch.rand(2, generator=generator, dtype=torch.float64) - 0.5) * 2 * CAMERA_SHIFT
        out.append(Truth(f"{index}", size, points, truth_cells(point_map(points, size)),
                         shift_affine(shift), "dataset"))
    return out


def label_map(truth: Truth) -> torch.Tensor:
    """(H/8, W/8) float64: the labels blurred at stride 8, each head of mass 1."""
    return gaussian_density([truth.points.float()], truth.size, STRIDE, SIGMA)[0, 0].double()


def model_like(truth: Truth, generator: torch.Generator, jitter: float = 3.0,
               count_sd: float = 0.1, background: float = 0.05) -> torch.Tensor:
    """A trained model's map without a coordinate bug: heads ``jitter`` px off (sd), the
    total off by a factor exp(N(0, count_sd)), ``background`` of the count spread as noise."""
    height, width = truth.size
    moved = truth.points + jitter * torch.randn(truth.points.shape, generator=generator,
                                                dtype=torch.float64)
    moved = moved.clamp(torch.zeros(2, dtype=torch.float64),
                        torch.tensor([width - 1.0, height - 1.0], dtype=torch.float64))
    density = gaussian_density([moved.float()], truth.size, STRIDE, SIGMA)[0, 0].double()
    noise = torch.rand(density.shape, generator=generator, dtype=torch.float64)
    noise = F.avg_pool2d(noise[None, None], 3, 1, 1, count_include_pad=False)[0, 0]
    total = float(density.sum())
    density = density + background * total * noise / noise.sum()
    return density * float(torch.exp(count_sd * torch.randn(1, generator=generator,
                                                            dtype=torch.float64)))


def _resized_back(turned: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """``turned`` resized to ``shape``, its total kept (a careful resize, a careless turn)."""
    out = F.interpolate(turned[None, None], size=shape, mode="bilinear",
                        align_corners=False)[0, 0]
    return out * (turned.sum() / out.sum())


CORRUPTIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "hflip": lambda m: m.flip(-1),
    # One sample (8 px) right, zeros moving in: the smallest offset a wrong crop gives.
    "shift": lambda m: F.pad(m, (1, -1)),
    # torch.roll by a quarter of the width: 40 px at 160 wide, 160 px at 640 wide.
    "roll": lambda m: torch.roll(m, m.shape[1] // 4, 1),
    "rot90": lambda m: _resized_back(torch.rot90(m, 1, (0, 1)), tuple(m.shape)),
    "rot270": lambda m: _resized_back(torch.rot90(m, 3, (0, 1)), tuple(m.shape)),
    # Half the resolution, values averaged, not summed: every total is exactly 1/4.
    "half": lambda m: F.avg_pool2d(m[None, None], 2)[0, 0],
    "stride-squared": lambda m: m * STRIDE ** 2,  # a density never divided by 8 x 8
}
