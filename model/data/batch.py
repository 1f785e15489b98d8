"""One batch of RGB-T pairs as the loaders yield it and the engine consumes it."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch


@dataclass
class Batch:
    rgb: torch.Tensor  # (B, 3, H, W); uint8 from the loaders, float after normalize()
    thermal: torch.Tensor  # (B, C, H, W), C = thermal_channels
    points: list[torch.Tensor]  # B tensors (N_i, 2) of (x, y) pixels in the thermal frame
    ids: list[str]
    # (H, W) of each pair before it was cropped; None when the batch holds whole images. The
    # Bayesian loss sizes its background distance by the uncropped image, as the public code.
    full_sizes: list[tuple[int, int]] | None = None
    # (B, 2, 3) where each thermal pixel of the crop shows up in its RGB (pixels), when the data
    # knows it (the synthetic generator); None otherwise. Supervises alignment.
    thermal_to_rgb: torch.Tensor | None = None

    def full_size(self, index: int) -> tuple[int, int]:
        """(H, W) of pair ``index`` before cropping."""
        return self.image_size if self.full_sizes is None else self.full_sizes[index]

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.rgb.shape[-2]), int(self.rgb.shape[-1])

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        return replace(
            self,
            rgb=self.rgb.to(device, non_blocking=non_blocking),
            thermal=self.thermal.to(device, non_blocking=non_blocking),
            points=[p.to(device, non_blocking=non_blocking) for p in self.points],
            thermal_to_rgb=None if self.thermal_to_rgb is None else self.thermal_to_rgb.to(
                device, non_blocking=non_blocking),
        )
