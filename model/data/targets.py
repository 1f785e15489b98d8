"""Training and evaluation targets built from head points, and collation of whole pairs.

- ``density_maps``: count-preserving Gaussian maps at the output stride (for an MSE loss).
- Batch.points already is the per-image point list the Bayesian loss consumes.
- ``point_map``: the official protocol's rasterised ground truth (domain.md, eval_game).
"""

from __future__ import annotations

import torch

from model.data.batch import Batch
from model.data.sample import Sample


def _axis_weights(coords: torch.Tensor, length: int, stride: int, sigma: float) -> torch.Tensor:
    """(N,) coordinates -> (N, ceil(length / stride)) Gaussian mass per output cell.

    Each row is renormalised to sum to 1 over the image, so a head near the border still counts
    as exactly one person (its cut-off tail is folded back in).
    """
    centres = torch.arange(length, device=coords.device, dtype=torch.float32) + 0.5
    weights = torch.exp(-0.5 * ((centres[None, :] - coords[:, None]) / sigma) ** 2)
    weights = weights / weights.sum(1, keepdim=True).clamp(min=1e-12)
    cells = -(-length // stride)
    padded = torch.nn.functional.pad(weights, (0, cells * stride - length))
    return padded.view(len(coords), cells, stride).sum(-1)


def density_map(
    points: torch.Tensor, height: int, width: int, stride: int = 1, sigma: float = 4.0
) -> torch.Tensor:
    """(h, w) = (ceil(H / stride), ceil(W / stride)) density whose sum is the number of points.

    Gaussians are separable, so the map is a (h, N) @ (N, w) product: no (N, H, W) tensor.
    """
    points = points.float()
    rows = _axis_weights(points[:, 1], height, stride, sigma)  # (N, h)
    cols = _axis_weights(points[:, 0], width, stride, sigma)  # (N, w)
    return rows.T @ cols


def density_maps(
    points: list[torch.Tensor], height: int, width: int, stride: int = 1, sigma: float = 4.0
) -> torch.Tensor:
    """(B, 1, h, w) density maps for a batch's point lists."""
    return torch.stack([density_map(p, height, width, stride, sigma) for p in points])[:, None]


def point_map(points: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(H, W) protocol ground truth: T[int(y), int(x)] = 1 by assignment (a shared pixel counts
    once).

    ``int()`` truncates toward zero, so -0.5 lands on row/column 0 exactly as in eval_game.
    """
    out = torch.zeros(height, width, device=points.device)
    idx = points.float().trunc().long()
    x, y = idx[:, 0], idx[:, 1]
    keep = (x >= 0) & (x < width) & (y >= 0) & (y < height)
    out[y[keep], x[keep]] = 1.0
    return out


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
    )
