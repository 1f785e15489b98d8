"""Collation of whole pairs into a Batch.

The targets live elsewhere, each in one place: Gaussian density maps at the output stride in
``model.targets.gaussian_density`` (built on the device inside the loss), the point lists the
Bayesian loss consumes in ``Batch.points``, and the protocol's rasterised point map in
``model.game.point_map``.
"""

from __future__ import annotations

import torch

from model.data.batch import Batch
from model.data.sample import Sample


def collate(samples: list[Sample]) -> Batch:
    """Stack same-sized pairs into a Batch; point lists stay a list (their lengths differ)."""
    sizes = {s.size for s in samples}
    if len(sizes) != 1:
        raise ValueError(f"cannot stack pairs of different sizes {sorted(sizes)}; crop them first")
    return Batch(
        rgb=torch.stack([s.rgb for s in samples]),
        thermal=torch.stack([s.thermal for s in samples]),
        points=[s.points for s in samples],
        ids=[s.id for s in samples],
        full_sizes=[s.size for s in samples],
    )
