"""GAME of one image exactly as the official RGBT-CC ``eval_game`` computes it.

IADM, BM and the later RGB-T papers all report this protocol unchanged, so every number here
must match it to float precision (see docs/domain.md, "The evaluation protocol"):

1. the ground truth is a rasterised point map T of the image size, ``T[int(y), int(x)] = 1``;
2. the prediction D (h, w) is resized bicubically to (H, W) and divided by (H / h) ** 2;
3. GAME(L) of one image sums |sum D_cell - sum T_cell| over the 2^L x 2^L cells with rows
   ``[i*H//p, (i+1)*H//p)`` and columns ``[j*W//p, (j+1)*W//p)``.

The set-level numbers (step 4 of the protocol) are ``model.metrics.aggregate``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from model.data.batch import Batch
from model.metrics import GAME_LEVELS, aggregate


def _image_size(image_size: tuple[int, int]) -> tuple[int, int]:
    if len(image_size) != 2 or min(int(image_size[0]), int(image_size[1])) < 1:
        raise ValueError(f"image_size={tuple(image_size)!r} is not valid; it must be (H, W) >= 1")
    return int(image_size[0]), int(image_size[1])


def check_points(points: torch.Tensor) -> torch.Tensor:
    """``points`` as float64 (N, 2) (x, y); a wrong shape or a non-finite value raises."""
    points = check_shape(points).to(torch.float64)
    if not torch.isfinite(points).all():
        raise ValueError("points contain a NaN or infinite coordinate")
    return points


def point_map(
    points: torch.Tensor, image_size: tuple[int, int], count_all: bool = False
) -> torch.Tensor:
    """The official rasterised ground truth, (H, W) float32 on the points' device.

    The official code indexes ``T[int(y), int(x)]`` after checking only ``< H`` and ``< W``.
    Python's ``int`` truncates toward zero, so -0.5 lands in pixel 0 and we keep it; -1.5 gives
    -1, which numpy would wrap to the last row or column, an accident of negative indexing
    rather than part of the protocol, so such points are dropped. Assignment makes two points
    on one pixel count once; ``count_all=True`` counts every point instead.
    """
    height, width = _image_size(image_size)
    points = check_points(points)
    # Truncate in float so huge coordinates cannot overflow the integer cast.
    cols, rows = points[:, 0].trunc(), points[:, 1].trunc()
    keep = (cols >= 0) & (cols < width) & (rows >= 0) & (rows < height)
    index = (rows[keep].long(), cols[keep].long())
    target = torch.zeros(height, width, dtype=torch.float32, device=points.device)
    ones = torch.ones(index[0].shape[0], dtype=torch.float32, device=points.device)
    return target.index_put_(index, ones, accumulate=count_all)


def upsample_density(density: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """Resize a (h, w), (1, h, w) or (1, 1, h, w) density to (H, W) as ``eval_game`` does.

    The official code divides by (H / h) ** 2 for both axes, so a map whose two strides differ
    is rescaled with the row stride only; we keep that quirk because the published numbers
    carry it. PyTorch's bicubic (a = -0.75, align_corners=False, clamped border) is OpenCV's
    INTER_CUBIC for float maps.
    """
    height, width = _image_size(image_size)
    if density.dim() < 2 or any(int(s) != 1 for s in density.shape[:-2]):
        raise ValueError(
            f"density of shape {tuple(density.shape)} is not valid; expected (h, w) or (1, 1, h, w)"
        )
    h, w = int(density.shape[-2]), int(density.shape[-1])
    if density.dtype in (torch.float16, torch.bfloat16) or not density.is_floating_point():
        density = density.float()
    resized = F.interpolate(
        density.reshape(1, 1, h, w), size=(height, width), mode="bicubic", align_corners=False
    )
    ratio = height / h
    return resized[0, 0] / (ratio * ratio)


def _cell_membership(n: int, p: int, like: torch.Tensor) -> torch.Tensor:
    """(p, n) 0/1 matrix: entry (i, r) is 1 when index r lies in [i*n//p, (i+1)*n//p)."""
    bounds = torch.arange(p + 1, device=like.device) * n // p
    index = torch.arange(n, device=like.device)
    inside = (index >= bounds[:-1, None]) & (index < bounds[1:, None])
    return inside.to(like.dtype)


def cell_sums(map2d: torch.Tensor, p: int) -> torch.Tensor:
    """Sums of a (..., H, W) map over the p x p GAME cells, (..., p, p), row-major cells.

    Two matrix products with 0/1 membership matrices give every cell sum at once, handle sizes
    that p does not divide (cells then differ by one row or column, as in the protocol) and stay
    differentiable for the local-count loss.
    """
    if int(p) < 1:
        raise ValueError(f"p={p!r} is not valid; it must be >= 1")
    if map2d.dim() < 2:
        raise ValueError(f"map of shape {tuple(map2d.shape)} is not valid; expected (..., H, W)")
    if map2d.dtype in (torch.float16, torch.bfloat16) or not map2d.is_floating_point():
        map2d = map2d.float()
    height, width = int(map2d.shape[-2]), int(map2d.shape[-1])
    # Autocast would run the products in bf16 and lose counts; sums need full precision.
    with torch.autocast(device_type=map2d.device.type, enabled=False):
        rows = _cell_membership(height, int(p), map2d)
        cols = _cell_membership(width, int(p), map2d)
        return rows @ map2d @ cols.T


def level_errors(difference: torch.Tensor) -> dict[int, torch.Tensor]:
    """Signed cell errors (..., p, p) of (..., H, W) prediction-minus-truth maps for every
    GAME level.

    Level L's boundaries i*H//2^L equal level 3's boundaries (i * 2^(3-L)) * H//8, so the coarse
    cells are exact unions of the finest ones: one pass over the full map serves all levels.
    """
    finest = GAME_LEVELS[-1]
    cells = cell_sums(difference, 2**finest)
    errors = {}
    for level in GAME_LEVELS:
        p, block = 2**level, 2 ** (finest - level)
        errors[level] = cells.reshape(*cells.shape[:-2], p, block, p, block).sum(dim=(-3, -1))
    return errors


def game_per_image(
    density: torch.Tensor,
    points: torch.Tensor,
    image_size: tuple[int, int],
    count_all: bool = False,
) -> dict[str, Any]:
    """GAME0-3 of one image plus the signed errors behind them.

    Returns ``game0..game3``, ``error`` (signed pred - true count), ``pred_count``,
    ``true_count`` and ``cells``: {L: list of the p*p signed cell errors, row-major} for
    L = 1, 2, 3, which the reports use to show where a model miscounts. Computed in float64 so
    that summing a 640x480 map cannot drift from the protocol.
    """
    pred = upsample_density(density.detach().to(torch.float64), image_size)
    true = point_map(points.to(pred.device), image_size, count_all).to(torch.float64)
    # One transfer to the host for the whole image instead of one per number.
    return _row(_flat_errors(pred - true, pred.sum(), true.sum()).tolist())


def _flat_errors(difference: torch.Tensor, pred: torch.Tensor, true: torch.Tensor):
    """(..., K): GAME0-3, signed count error, predicted and true count, the fine cells of
    levels 1-3, from (..., H, W) prediction-minus-truth maps and their (...) totals."""
    errors = level_errors(difference)
    lead = difference.shape[:-2]
    games = torch.stack([errors[level].abs().sum(dim=(-2, -1)) for level in GAME_LEVELS], -1)
    fine = [errors[level].reshape(*lead, -1) for level in GAME_LEVELS[1:]]
    return torch.cat([games, errors[0].reshape(*lead, 1), pred[..., None], true[..., None],
                      *fine], dim=-1)


def _row(values: list[float]) -> dict[str, Any]:
    n_levels = len(GAME_LEVELS)
    row: dict[str, Any] = {f"game{level}": values[level] for level in GAME_LEVELS}
    row["error"], row["pred_count"], row["true_count"] = values[n_levels:n_levels + 3]
    start, cells = n_levels + 3, {}
    for level in GAME_LEVELS[1:]:
        cells[level] = values[start:start + 4**level]
        start += 4**level
    row["cells"] = cells
    return row


def point_maps(points: list[torch.Tensor], image_size: tuple[int, int],
               count_all: bool = False) -> torch.Tensor:
    """(B, H, W) float32 ``point_map`` of each point list, rasterised in one ``index_put_``."""
    height, width = _image_size(image_size)
    device = points[0].device if points else torch.device("cpu")
    flat = torch.cat([check_shape(p).to(device, torch.float64) for p in points])
    counts = [len(p) for p in points]
    owner = torch.repeat_interleave(torch.arange(len(points), device=device),
                                    torch.tensor(counts, device=device), output_size=sum(counts))
    cols, rows = flat[:, 0].trunc(), flat[:, 1].trunc()
    # NaN fails every comparison: such a point is dropped here and refused by game_batch.
    keep = (cols >= 0) & (cols < width) & (rows >= 0) & (rows < height)
    # A dropped point goes to a spare column cut off below: no boolean indexing, which would
    # wait for the device to count the points kept.
    index = (owner, torch.where(keep, rows, 0).long(), torch.where(keep, cols, width).long())
    target = torch.zeros(len(points), height, width + 1, dtype=torch.float32, device=device)
    ones = torch.ones(flat.shape[0], dtype=torch.float32, device=device)
    return target.index_put_(index, ones, accumulate=count_all)[..., :width]


def check_shape(points: torch.Tensor) -> torch.Tensor:
    if points.dim() != 2 or points.shape[1] != 2:
        raise ValueError(
            f"points of shape {tuple(points.shape)} are not valid; expected (N, 2) (x, y)"
        )
    return points


def game_batch(
    density: torch.Tensor,
    points: list[torch.Tensor],
    image_size: tuple[int, int],
    count_all: bool = False,
) -> list[dict[str, Any]]:
    """``game_per_image`` of every image of a (B, 1, h, w) prediction of same-size images, in
    one pass on the prediction's device and one transfer to the host for the whole batch."""
    height, width = _image_size(image_size)
    b, h, w = density.shape[0], int(density.shape[-2]), int(density.shape[-1])
    maps = density.detach().to(torch.float64).reshape(b, 1, h, w)
    ratio = height / h  # the protocol's row-stride quirk, as upsample_density
    pred = F.interpolate(maps, size=(height, width), mode="bicubic",
                         align_corners=False)[:, 0] / (ratio * ratio)
    true = point_maps([p.to(pred.device) for p in points], image_size, count_all)
    flat = _flat_errors(pred - true.to(torch.float64), pred.sum(dim=(1, 2)),
                        true.sum(dim=(1, 2)).to(torch.float64))
    finite = torch.cat([p.to(pred.device).reshape(-1) for p in points]).isfinite().all()
    values = torch.cat([flat.flatten(), finite.to(flat.dtype)[None]]).tolist()
    if not values[-1]:
        raise ValueError("points contain a NaN or infinite coordinate")
    k = flat.shape[-1]
    return [_row(values[i * k:(i + 1) * k]) for i in range(b)]


class MetricAccumulator:
    """Collects per-image GAME rows over an evaluation pass, keyed by image id."""

    def __init__(self, count_all: bool = False) -> None:
        self.count_all = count_all
        self._rows: list[dict[str, Any]] = []
        self._ids: set[str] = set()

    def __len__(self) -> int:
        return len(self._rows)

    def add(
        self,
        density: torch.Tensor,
        points: torch.Tensor,
        image_size: tuple[int, int],
        image_id: str,
    ) -> dict[str, Any]:
        row = game_per_image(density, points, image_size, self.count_all)
        return self._extend([image_id], [row])[0]

    def add_batch(self, density: torch.Tensor, batch: Batch) -> list[dict[str, Any]]:
        """Score a (B, 1, h, w) prediction against a full-resolution batch (one host sync)."""
        if density.dim() != 4 or density.shape[0] != len(batch.ids):
            raise ValueError(
                f"density of shape {tuple(density.shape)} does not match a batch of "
                f"{len(batch.ids)} images; expected (B, 1, h, w)"
            )
        return self._extend(batch.ids, game_batch(density, batch.points, batch.image_size,
                                                  self.count_all))

    def _extend(self, ids: list[str], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for image_id, row in zip(ids, rows, strict=True):
            # An image scored twice would silently weigh double in every mean.
            if image_id in self._ids:
                raise ValueError(f"image_id={image_id!r} was already added")
            self._ids.add(image_id)
            self._rows.append({"image_id": image_id, **row})
        return self._rows[-len(ids):]

    def results(self) -> list[dict[str, Any]]:
        return [dict(row) for row in self._rows]

    def summary(self) -> dict[str, float]:
        return aggregate(self._rows)
