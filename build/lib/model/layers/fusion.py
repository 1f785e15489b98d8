"""Fusion of the reference and aligned moving features into one map.

A fusion entry is built as ``cls(channels)`` and called as ``forward(reference, moving)``.
"""

from __future__ import annotations

import torch
from torch import nn

from model.registry import register


@register("fusion", "concat")
class ConcatFusion(nn.Module):
    """Learned 1x1 projection of the concatenation (the plan's choice for separate backbones)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.project = nn.Sequential(nn.Conv2d(2 * channels, channels, 1), nn.ReLU(inplace=True))

    def forward(self, reference: torch.Tensor, moving: torch.Tensor) -> torch.Tensor:
        return self.project(torch.cat([reference, moving], dim=1))


@register("fusion", "sum")
class SumFusion(nn.Module):
    """F = Fr + Ft: meaningful once a shared backbone puts both in one feature space."""

    def __init__(self, channels: int) -> None:
        super().__init__()

    def forward(self, reference: torch.Tensor, moving: torch.Tensor) -> torch.Tensor:
        return reference + moving

