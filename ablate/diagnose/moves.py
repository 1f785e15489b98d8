"""Every move of the map at once: the fine shift in input pixels and the whole-map moves in
map samples (a circular roll, a zero-filled shift), each as one (n, P, 5) score grid.

A move along an axis is a linear map, so the GAME cell sums of every moved copy come from one
batched product per image: (S, 8, h) row operators times the map times (S, 8, w) column
operators gives the (S, S, 8, 8) cell sums of all S x S moves, scored by ``batch_games``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ablate.diagnose.scoring import batch_games, cell_operator
from ablate.diagnose.search import Grid
from ablate.diagnose.truth import Truth

SHIFT_REACH = 32  # input pixels each way: RGBT-CC's camera displacement is up to tens of px
WHOLE_STEPS = 40  # whole-map moves tried per side and axis: one sample apart at stride 8 on
# 640 x 480 (half of 80 samples), coarser only on finer maps such as rasterised points


def _prior(dy: torch.Tensor, dx: torch.Tensor) -> torch.Tensor:
    """(P,) a tie-break toward the smallest move, so a sound map keeps (0, 0)."""
    return 1e-9 * (dy[:, None] ** 2 + dx[None, :] ** 2).flatten().to(torch.float64)


def _params(dy: torch.Tensor, dx: torch.Tensor) -> list[dict[str, int]]:
    return [{"dx": int(x), "dy": int(y)} for y in dy for x in dx]


def _score(rows: torch.Tensor, density: torch.Tensor, cols: torch.Tensor,
           truth: Truth) -> torch.Tensor:
    """(Sy * Sx, 5) scores of cells = rows[y] @ density @ cols[x].T / ratio**2."""
    ratio = truth.size[0] / density.shape[0]  # the protocol's row-ratio rescale
    cells = torch.einsum("yiw,xjw->yxij", rows @ density.to(torch.float64), cols)
    return batch_games(cells / (ratio * ratio), truth.cells).flatten(0, 1)


def fine_shift(maps: Sequence[torch.Tensor], truths: Sequence[Truth],
               reach: int = SHIFT_REACH) -> Grid:
    """Every whole-pixel shift of the resized map within +-reach, zeros moving in."""
    reach = min(reach, *(min(t.size) - 1 for t in truths))  # a move past the image is void
    shifts = tuple(range(-reach, reach + 1))
    scores = torch.stack([
        _score(cell_operator(d.shape[0], t.size[0], shifts), d,
               cell_operator(d.shape[1], t.size[1], shifts), t)
        for d, t in zip(maps, truths, strict=True)])
    offsets = torch.tensor(shifts)
    return Grid("shift", _params(offsets, offsets), scores, _prior(offsets, offsets))


def _offsets(n: int) -> torch.Tensor:
    """Moves of up to half the map (a roll by more is a roll the other way)."""
    half = n // 2
    step = max(1, math.ceil(half / WHOLE_STEPS))
    return torch.arange(-(half // step) * step, half + 1, step)


def _moved_operator(n: int, size: int, offsets: torch.Tensor, circular: bool) -> torch.Tensor:
    """(S, 8, n) cell sums along one axis of a length-n map moved by each offset, in samples.

    Moving by +d takes sample c - d to c, so the operator's column c is the resize operator's
    column c + d: a gather, wrapped for a roll and zero outside the map for a padded shift.
    """
    base = cell_operator(n, size)[0]  # (8, n)
    source = torch.arange(n)[None, :] + offsets[:, None]  # (S, n)
    if circular:
        return base[:, source % n].permute(1, 0, 2)
    inside = (source >= 0) & (source < n)
    gathered = base[:, source.clamp(0, n - 1)].permute(1, 0, 2)
    return gathered * inside[:, None, :]


def whole_map(maps: Sequence[torch.Tensor], truths: Sequence[Truth],
              circular: bool) -> Grid | None:
    """Every move of the map in samples over up to half of it (a ``torch.roll`` or a crop or
    pad on the wrong side); None when the maps differ in shape (no common move to offer)."""
    if len({tuple(d.shape) for d in maps}) != 1:
        return None
    h, w = maps[0].shape
    dy, dx = _offsets(h), _offsets(w)
    scores = torch.stack([
        _score(_moved_operator(h, t.size[0], dy, circular), d,
               _moved_operator(w, t.size[1], dx, circular), t)
        for d, t in zip(maps, truths, strict=True)])
    return Grid("roll" if circular else "padded-shift", _params(dy, dx), scores,
                _prior(dy, dx))
