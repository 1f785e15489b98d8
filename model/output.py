"""What the network's forward pass returns: the density and everything the losses and plots need."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class ModelOutput:
    density: torch.Tensor  # (B, 1, H/r, W/r), in the reference frame
    density_s4: torch.Tensor | None = None  # (B, 1, H/4, W/4) when multiscale
    theta: torch.Tensor | None = None  # (B, 2, 3) STN affine (input coords -> sampling coords)
    moving_warped: torch.Tensor | None = None  # (B, C, H, W) moving image after the STN
    # flow: (B, 2, h, w) as (dx, dy) in feature pixels; deform: (B, 2*3*3, h, w)
    offsets: torch.Tensor | None = None
    # Moving features at the offset stage before warping, beside aligned_features[0][1] after it.
    moving_features: torch.Tensor | None = None
    # Pairs (reference, warped moving) at each aligned scale, for the feature-L1 term.
    aligned_features: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)
    domain_logits: torch.Tensor | None = None  # (2B, 2): rows 0..B-1 are RGB, B..2B-1 thermal
    domain_labels: torch.Tensor | None = None  # (2B,) 0 = RGB, 1 = thermal
