"""Scoring every candidate correction over the split and keeping each one's best params.

Every candidate is scored through the protocol's matrices (``scoring``); the global shift is
searched over every whole-pixel shift within +-``SHIFT_REACH`` at once, as one batched product
per image, (2R+1)^2 x 64 cell sums instead of a resize per shift.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ablate.diagnose.hypotheses import apply, candidates
from ablate.diagnose.scoring import cell_operator, image_row, map_cells
from ablate.diagnose.truth import Truth
from model.metrics import aggregate

SHIFT_REACH = 32  # input pixels each way: RGBT-CC's camera displacement is up to tens of px


@dataclass
class Scored:
    """One correction's best params and the per-image rows it gives (``aggregate`` reads them)."""

    name: str
    params: dict[str, Any]
    rows: list[dict[str, Any]]
    bound: bool = False  # a count/placement split row, not a correction
    summary: dict[str, float] = field(init=False)

    def __post_init__(self) -> None:
        self.summary = aggregate(self.rows)


def _key(name: str, params: dict[str, Any]) -> str:
    return json.dumps([name, params], sort_keys=True)


def discrete(maps: Sequence[torch.Tensor], truths: Sequence[Truth]) -> list[Scored]:
    """Each discrete correction at the params that give the lowest mean GAME3 over the split."""
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for density, truth in zip(maps, truths, strict=True):
        for name, params in candidates(tuple(density.shape), truth.size, True):
            fixed = apply(name, params, density, truth.size, truth.affine)
            rows[_key(name, params)].append(image_row(map_cells(fixed, truth.size), truth.cells))
    # Params offered for only some images (maps of mixed strides) cannot be compared fairly.
    complete = {k: v for k, v in rows.items() if len(v) == len(truths)}
    best: dict[str, tuple[float, str]] = {}
    for key, key_rows in complete.items():
        name = json.loads(key)[0]
        game3 = sum(r["game3"] for r in key_rows)
        if name not in best or game3 < best[name][0]:
            best[name] = (game3, key)
    scored = [Scored(*json.loads(key), complete[key]) for _, key in best.values()]
    sources = {t.affine_source for t in truths}
    for s in scored:
        if s.name == "camera":  # where each image's displacement came from
            s.params["source"] = sources.pop() if len(sources) == 1 else "dataset or estimated"
    return scored


def _shift_game3(density: torch.Tensor, truth: Truth, shifts: tuple[int, ...]) -> torch.Tensor:
    """(S, S) GAME3 of the map moved by every (dy, dx) in shifts x shifts."""
    (h, w), (height, width) = density.shape, truth.size
    rows, cols = cell_operator(h, height, shifts), cell_operator(w, width, shifts)
    ratio = height / h
    cells = torch.einsum("yiw,xjw->yxij", rows @ density, cols) / (ratio * ratio)
    return (cells - truth.cells).abs().sum(dim=(-2, -1))


def shift(maps: Sequence[torch.Tensor], truths: Sequence[Truth],
          reach: int = SHIFT_REACH) -> Scored:
    """The one global shift, whole pixels within +-reach, with the lowest mean GAME3."""
    reach = min(reach, *(min(t.size) - 1 for t in truths))  # a move past the image is void
    shifts = tuple(range(-reach, reach + 1))
    total = torch.zeros(len(shifts), len(shifts), dtype=torch.float64)
    for density, truth in zip(maps, truths, strict=True):
        total += _shift_game3(density, truth, shifts)
    # Among equal scores prefer the smallest move, so a sound map keeps (0, 0).
    offsets = torch.tensor(shifts, dtype=torch.float64)
    total = total + 1e-9 * (offsets[:, None] ** 2 + offsets[None, :] ** 2)
    index = int(total.argmin())
    params = {"dx": shifts[index % len(shifts)], "dy": shifts[index // len(shifts)]}
    rows = [image_row(map_cells(apply("shift", params, d, t.size), t.size), t.cells)
            for d, t in zip(maps, truths, strict=True)]
    return Scored("shift", params, rows)


def _rescaled(cells: torch.Tensor, total: float) -> torch.Tensor:
    """``cells`` scaled to sum to ``total``; spread evenly when they hold nothing to scale."""
    current = float(cells.sum())
    if current > 0:
        return cells * (total / current)
    return torch.full_like(cells, total / cells.numel())


def count_placement(maps: Sequence[torch.Tensor], truths: Sequence[Truth]) -> list[Scored]:
    """The error split: the true placement at the predicted totals (what is left is count
    error, the best any placement fix can do) and the predicted placement at the true totals
    (what is left is placement error)."""
    count_only, placement_only = [], []
    for density, truth in zip(maps, truths, strict=True):
        pred = map_cells(density, truth.size)
        true_total, pred_total = float(truth.cells.sum()), float(pred.sum())
        count_only.append(image_row(_rescaled(truth.cells, pred_total), truth.cells))
        placement_only.append(image_row(_rescaled(pred, true_total), truth.cells))
    return [Scored("true-placement", {"bound": "count error only"}, count_only, True),
            Scored("true-counts", {"bound": "placement error only"}, placement_only, True)]
