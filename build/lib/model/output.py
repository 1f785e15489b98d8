"""What the network's forward pass returns: the density and everything the losses and plots need.

Every field is filled the same way for every variant. A module that is off is the identity:
``moving_warped`` is then the moving image itself, ``moving_features`` and the pairs in
``aligned_features`` are the unwarped features, and what only an active module produces
(``theta``, ``displacement``, the domain logits, ``density_s4``) is None. So a consumer tells
"off" from "on" by ``theta``/``displacement`` being None, never by reading the config.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class ModelOutput:
    density: torch.Tensor  # (B, 1, H/r, W/r), in the reference frame
    density_s4: torch.Tensor | None = None  # (B, 1, H/4, W/4) when multiscale
    theta: torch.Tensor | None = None  # (B, 2, 3) STN affine (input coords -> sampling coords)
    moving_warped: torch.Tensor | None = None  # (B, C, H, W) moving image after the STN
    # (B, 2, h, w) as (dx, dy) in feature pixels at the aligned stage, whatever the aligner:
    # where each pixel samples the moving features, relative to itself (None: no aligner).
    displacement: torch.Tensor | None = None
    # Moving features at the aligned stage before the aligner, beside aligned_features[0][1].
    moving_features: torch.Tensor | None = None
    # Pairs (reference, aligned moving) at the aligned stage and at stride 16, for feature L1.
    aligned_features: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)
    domain_logits: torch.Tensor | None = None  # (2B, 2): rows 0..B-1 are RGB, B..2B-1 thermal
    domain_labels: torch.Tensor | None = None  # (2B,) 0 = RGB, 1 = thermal

    @property
    def offsets(self) -> torch.Tensor | None:
        """The former name of ``displacement``, kept for callers written before the rename."""
        return self.displacement
