"""Scoring every candidate correction on every image, and choosing each one's params.

Each correction is a ``Grid``: the (n images, P params, 5) scores of every params value on
every image (GAME0-3 and the predicted count, through the protocol's matrices in
``scoring``). ``fit`` turns a grid into a ``Scored``: the params with the lowest GAME3 summed
over the split (what the table shows and the fix would apply) and, for the test, each image
scored at the params the *other* images chose (leave-one-out), so that fitting a shift or a
stride to the very images it is judged on does not flatter it.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ablate.diagnose.hypotheses import apply, candidates
from ablate.diagnose.scoring import batch_games, image_row, map_cells, row_of
from ablate.diagnose.truth import Truth
from model.metrics import aggregate

# Totals off by a power of two: a density not divided by the stride squared (x64 at stride
# 8) or a map resized without rescaling its values (x1/4 for half the size per side).
SCALE_FACTORS = tuple(2.0 ** k for k in range(-12, 13) if k)


@dataclass
class Grid:
    """One correction's scores on every image at every params value."""

    name: str
    params: list[dict[str, Any]]  # P
    scores: torch.Tensor  # (n, P, 5) float64: GAME0-3 and predicted count
    prior: torch.Tensor | None = None  # (P,) tie-break added to the summed GAME3

    def take(self, images: list[int]) -> Grid:
        """The same grid on a subset of the images."""
        return Grid(self.name, self.params, self.scores[images], self.prior)


@dataclass
class Scored:
    """One correction at its best params: per-image rows (``aggregate`` reads them), and the
    confidence ``evidence.weigh`` adds."""

    name: str
    params: dict[str, Any]
    rows: list[dict[str, Any]]
    bound: bool = False  # a count/placement split row, not a correction
    held_out: list[dict[str, Any]] | None = None  # rows at the leave-one-out params
    p: float | None = None  # adjusted one-sided p against the maps as given
    helps: int | None = None  # images whose held-out GAME3 drops by at least the margin
    summary: dict[str, float] = field(init=False)

    def __post_init__(self) -> None:
        self.summary = aggregate(self.rows)


def fit(grid: Grid, truths: Sequence[Truth]) -> Scored:
    """The grid's best params over all images, and each image at the others' best."""
    game3 = grid.scores[..., 3]  # (n, P)
    prior = grid.prior if grid.prior is not None else torch.zeros(game3.shape[1],
                                                                  dtype=torch.float64)
    total = game3.sum(0) + prior
    best = int(total.argmin())
    # One image alone has no "others": it is scored at the params fitted on itself, and the
    # verdict calls one image too few anyway.
    held = (total[None] - game3).argmin(1) if len(truths) > 1 else torch.tensor([best])
    counts = [float(t.cells.sum()) for t in truths]
    rows = [row_of(grid.scores[i, best], c) for i, c in enumerate(counts)]
    held_out = [row_of(grid.scores[i, int(k)], c) for i, (k, c) in enumerate(zip(held, counts,
                                                                                  strict=True))]
    return Scored(grid.name, dict(grid.params[best]), rows, held_out=held_out)


def _key(name: str, params: dict[str, Any]) -> str:
    return json.dumps([name, params], sort_keys=True)


def discrete(maps: Sequence[torch.Tensor], truths: Sequence[Truth]) -> list[Grid]:
    """A grid per discrete correction (flips, turns, stride, padding, camera), over the params
    offered for every image (maps of mixed strides cannot share the others)."""
    scores: dict[str, list[torch.Tensor]] = defaultdict(list)
    for density, truth in zip(maps, truths, strict=True):
        for name, params in candidates(tuple(density.shape), truth.size, True):
            fixed = apply(name, params, density, truth.size, truth.affine)
            scores[_key(name, params)].append(batch_games(map_cells(fixed, truth.size),
                                                          truth.cells))
    by_name: dict[str, list[str]] = defaultdict(list)
    for key, values in scores.items():
        if len(values) == len(truths):
            by_name[json.loads(key)[0]].append(key)
    grids = []
    for name, keys in by_name.items():
        params = [json.loads(k)[1] for k in keys]
        grid = torch.stack([torch.stack(scores[k]) for k in keys], 1)  # (n, P, 5)
        grids.append(Grid(name, params, grid))
    sources = {t.affine_source for t in truths}
    for grid in grids:
        if grid.name == "camera":  # where each image's displacement came from
            source = sources.pop() if len(sources) == 1 else "dataset or estimated"
            grid.params = [{**p, "source": source} for p in grid.params]
    return grids


def count_scale(maps: Sequence[torch.Tensor], truths: Sequence[Truth]) -> Grid:
    """Totals a constant power of two off: the correction divides by ``factor``, the ratio of
    predicted to true totals the bug introduced."""
    factors = torch.tensor(SCALE_FACTORS, dtype=torch.float64)
    scores = torch.stack([
        batch_games(map_cells(d, t.size)[None] / factors[:, None, None], t.cells)
        for d, t in zip(maps, truths, strict=True)])
    # Among equal scores the smaller exponent: a sound map's "best" factor is 2 or 1/2.
    prior = 1e-9 * torch.log2(factors).abs()
    return Grid("count-scale", [{"factor": f} for f in SCALE_FACTORS], scores, prior)


def ratio_text(factor: float) -> str:
    """2**k as "x4" or "x1/4"."""
    k = round(math.log2(factor))
    return f"x{2 ** k}" if k > 0 else f"x1/{2 ** -k}"


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
