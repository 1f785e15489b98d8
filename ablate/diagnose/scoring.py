"""The official GAME protocol as two small matrices, so that hundreds of candidate corrections
can be scored per image in microseconds.

The protocol's bicubic resize (``model.game.upsample_density``) is linear and separable, and
the GAME cells are sums over row and column ranges (``model.game.cell_sums``), so the
level-3 cell sums of a (h, w) map are ``R @ map @ C.T / ratio**2`` with R (8, h) and C (8, w)
built once per (h, H) by pushing an identity basis through the official resize and cell code.
Level 0-2 errors then come from ``model.game.level_errors`` and the set from ``aggregate``:
the same numbers as ``game_per_image`` (a test checks it to 1e-9), about 1000 times faster.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from model.game import cell_sums, level_errors
from model.metrics import GAME_LEVELS

CELLS = 2 ** GAME_LEVELS[-1]  # finest cells per side (8)


@functools.lru_cache(maxsize=64)
def resize_operator(n: int, size: int) -> torch.Tensor:
    """(size, n) float64 matrix of the protocol's 1-D bicubic resize from n to size samples.

    Resizing an (n, n) identity along one axis with the same ``F.interpolate`` call the protocol
    uses (the other axis kept at length 1, which bicubic leaves untouched) gives its columns.
    """
    basis = torch.eye(n, dtype=torch.float64).reshape(1, n, n, 1)
    resized = F.interpolate(basis, size=(size, 1), mode="bicubic", align_corners=False)
    return resized[0, :, :, 0].T.contiguous()


@functools.lru_cache(maxsize=64)
def shifted_cells(size: int, shifts: tuple[int, ...]) -> torch.Tensor:
    """(S, 8, size) 0/1 membership of the GAME cells of a map moved by each shift (zero fill).

    A map moved by +d along an axis has, in cell i, the original samples [b_i - d, b_(i+1) - d).
    """
    bounds = torch.arange(CELLS + 1) * size // CELLS
    index = torch.arange(size)
    moved = bounds[None, :] - torch.tensor(shifts)[:, None]  # (S, 9)
    inside = (index >= moved[:, :-1, None]) & (index < moved[:, 1:, None])
    return inside.to(torch.float64)


@functools.lru_cache(maxsize=64)
def cell_operator(n: int, size: int, shifts: tuple[int, ...] = (0,)) -> torch.Tensor:
    """(S, 8, n): cell sums along one axis of a length-n map resized to ``size`` and moved."""
    return shifted_cells(size, shifts) @ resize_operator(n, size)


def map_cells(density: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """(8, 8) level-3 cell sums of a (h, w) map as the protocol resizes it to ``image_size``."""
    height, width = image_size
    h, w = density.shape
    rows, cols = cell_operator(h, height)[0], cell_operator(w, width)[0]
    ratio = height / h  # the protocol rescales with the row ratio only (see upsample_density)
    return rows @ density.to(torch.float64) @ cols.T / (ratio * ratio)


def truth_cells(truth_map: torch.Tensor) -> torch.Tensor:
    """(8, 8) cell sums of the rasterised ground truth (``model.game.point_map``)."""
    return cell_sums(truth_map.to(torch.float64), CELLS)


def batch_games(pred_cells: torch.Tensor, true_cells: torch.Tensor) -> torch.Tensor:
    """(..., 5): GAME0-3 and the predicted count of every (..., 8, 8) cell sums at once.

    Level L's cells are unions of the finest ones (as in ``model.game.level_errors``), so the
    thousands of shifts a search scores per image cost one reshape each, not a loop.
    """
    diff = pred_cells - true_cells
    lead = diff.shape[:-2]
    games = []
    for level in GAME_LEVELS:
        p, block = 2 ** level, CELLS // 2 ** level
        cells = diff.reshape(*lead, p, block, p, block).sum(dim=(-3, -1))
        games.append(cells.abs().sum(dim=(-2, -1)))
    return torch.stack([*games, pred_cells.sum(dim=(-2, -1))], -1)


def row_of(scores: torch.Tensor, true_count: float) -> dict[str, float]:
    """The per-image row ``aggregate`` reads, from one (5,) ``batch_games`` entry."""
    values = scores.tolist()
    row = {f"game{level}": values[level] for level in GAME_LEVELS}
    pred = values[len(GAME_LEVELS)]
    row.update(error=pred - true_count, pred_count=pred, true_count=true_count)
    return row


def image_row(pred_cells: torch.Tensor, true_cells: torch.Tensor) -> dict[str, float]:
    """The per-image row ``model.metrics.aggregate`` reads, from (8, 8) cell sums."""
    errors = level_errors(pred_cells - true_cells)
    row = {f"game{level}": float(errors[level].abs().sum()) for level in GAME_LEVELS}
    pred, true = float(pred_cells.sum()), float(true_cells.sum())
    row.update(error=pred - true, pred_count=pred, true_count=true)
    return row
