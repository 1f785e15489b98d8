"""GAME-style local-count loss: L1 between predicted and true counts per grid cell.

GAME(L) scores counts per cell, not per pixel, so supervising the same cells directly is the
plan's lever on GAME1-3 while GAME0 is already good.
"""

from __future__ import annotations

import torch

from model.game import cell_sums


def local_count_loss(
    density: torch.Tensor,
    target: torch.Tensor,
    levels: tuple[int, ...],
    level_weights: tuple[float, ...],
) -> torch.Tensor:
    """Sum over levels of weight * mean over cells and batch of |pred cell - true cell|.

    ``density`` and ``target`` are (B, 1, h, w) maps on one grid; the cells at level k are the
    GAME cells of that grid with p = 2^k (rows [i*h//p, (i+1)*h//p)).
    """
    if density.shape != target.shape:
        raise ValueError(
            f"density {tuple(density.shape)} and target {tuple(target.shape)} must match"
        )
    if len(levels) != len(level_weights) or not levels:
        raise ValueError(f"levels={levels!r} and level_weights={level_weights!r} must pair up")
    total = density.new_zeros((), dtype=torch.float32)
    for level, weight in zip(levels, level_weights, strict=True):
        p = 2 ** int(level)
        diff = cell_sums(density, p) - cell_sums(target, p)
        total = total + weight * diff.abs().mean()
    return total
