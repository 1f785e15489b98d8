"""Feature-level local alignment: a per-pixel offset field that warps the moving features
onto the reference grid, either as a dense flow sampled with ``grid_sample`` ("flow") or as a
deformable convolution (Dai et al., ICCV 2017; ``torchvision.ops.DeformConv2d``, "deform").

The aligner contract (every entry of the "aligner" registry): ``cls(channels)``, and
``forward(reference, moving)`` returns ``(moving_aligned, displacement)`` where
``displacement`` is None or a (B, 2, h, w) field of (dx, dy) in feature pixels: where each
output pixel samples the moving features, relative to itself. The TV loss and the quiver plot
read it without knowing which aligner made it. Both built-ins are zero-initialised, so they are
the identity at init; "none" is the identity always.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import DeformConv2d

from model.registry import register


def _offset_net(channels: int, out: int) -> nn.Sequential:
    hidden = max(16, channels // 2)
    net = nn.Sequential(
        nn.Conv2d(2 * channels, hidden, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(hidden, hidden, 3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(hidden, out, 3, padding=1),
    )
    nn.init.zeros_(net[-1].weight)
    nn.init.zeros_(net[-1].bias)
    return net


def warp_by_flow(features: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample ``features`` at p + flow(p); flow (B, 2, h, w) as (dx, dy) in feature pixels."""
    _, _, h, w = features.shape
    ys, xs = torch.meshgrid(
        torch.arange(h, device=flow.device, dtype=flow.dtype),
        torch.arange(w, device=flow.device, dtype=flow.dtype),
        indexing="ij",
    )
    x = (2 * (xs + flow[:, 0]) + 1) / w - 1  # align_corners=False pixel-centre convention
    y = (2 * (ys + flow[:, 1]) + 1) / h - 1
    grid = torch.stack([x, y], dim=-1)  # (B, h, w, 2)
    return F.grid_sample(features, grid.to(features.dtype), mode="bilinear",
                         padding_mode="border", align_corners=False)


@register("aligner", "none")
class NoAlign(nn.Module):
    """Off: the moving features unchanged, and no displacement to regularise or plot."""

    def __init__(self, channels: int = 0) -> None:
        super().__init__()

    def forward(self, reference: torch.Tensor, moving: torch.Tensor):
        return moving, None


@register("aligner", "flow")
class FlowAlign(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.offset = _offset_net(channels, 2)

    def forward(self, reference: torch.Tensor, moving: torch.Tensor):
        flow = self.offset(torch.cat([reference, moving], dim=1))  # (B, 2, h, w)
        return warp_by_flow(moving, flow), flow


def tap_mean_displacement(offsets: torch.Tensor) -> torch.Tensor:
    """(B, 2*k*k, h, w) DeformConv2d offsets -> (B, 2, h, w) mean (dx, dy) over the taps.

    torchvision interleaves each kernel tap's offset as (dy, dx): channel 2*t is the row
    offset of tap t and 2*t + 1 its column offset. Its docs give only the shape; the order is
    the kernel's, pinned by a known-answer test in tests/test_alignment.py.
    """
    b, c, h, w = offsets.shape
    per_tap = offsets.view(b, c // 2, 2, h, w).mean(dim=1)  # (B, 2, h, w) as (dy, dx)
    return per_tap.flip(1)


@register("aligner", "deform")
class DeformAlign(nn.Module):
    def __init__(self, channels: int, kernel: int = 3) -> None:
        super().__init__()
        self.offset = _offset_net(channels, 2 * kernel * kernel)
        self.deform = DeformConv2d(channels, channels, kernel, padding=kernel // 2)
        # The centre tap as an identity matrix makes the whole layer the identity at init.
        with torch.no_grad():
            self.deform.weight.zero_()
            self.deform.weight[:, :, kernel // 2, kernel // 2] = torch.eye(channels)
            self.deform.bias.zero_()

    def forward(self, reference: torch.Tensor, moving: torch.Tensor):
        offsets = self.offset(torch.cat([reference, moving], dim=1))  # (B, 2*k*k, h, w)
        aligned = self.deform(moving, offsets.to(moving.dtype))
        return aligned, tap_mean_displacement(offsets)  # (B, C, h, w), (B, 2, h, w)
