"""Reading PRED_DIR: one file per image, named by the dataset's image id.

``<id>.npy`` / ``<id>.pt`` hold a density map (h, w), (1, h, w) or (1, 1, h, w) at any stride;
``<id>.json`` (a list of [x, y] or ``{"points": [...]}``) and ``<id>.txt`` (one "x y" or "x,y"
per line) hold predicted head points in input pixels. A file that cannot be read as one of
these is a DataError naming it: a half-broken folder should not be diagnosed silently.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ablate.errors import DataError, UsageError
from model.game import point_map

MAP_SUFFIXES = (".npy", ".pt")
POINT_SUFFIXES = (".json", ".txt")
SUFFIXES = MAP_SUFFIXES + POINT_SUFFIXES  # preference order when one id has several files


@dataclass
class Prediction:
    """One image's prediction: a density map, or points rasterised on demand."""

    path: Path
    density: torch.Tensor | None = None  # (h, w) float64
    points: torch.Tensor | None = None  # (N, 2) float64 (x, y)

    def as_map(self, image_size: tuple[int, int]) -> torch.Tensor:
        """The map the protocol scores; points count each at its pixel (stride 1)."""
        if self.density is not None:
            return self.density
        return point_map(self.points, image_size, count_all=True).to(torch.float64)

    @property
    def shape(self) -> tuple[int, int] | None:
        return None if self.density is None else tuple(self.density.shape)


def _load_array(path: Path) -> np.ndarray:
    try:
        if path.suffix.lower() == ".npy":
            return np.load(path, allow_pickle=False)
        value = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unreadable file means the same thing to the user
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"prediction {path} is not a readable array ({reason[:120]})") from None
    if isinstance(value, torch.Tensor):
        return value.detach().to(torch.float64).numpy()
    if isinstance(value, np.ndarray):
        return value
    raise DataError(f"prediction {path} holds a {type(value).__name__}, not a tensor")


def read_map(path: Path) -> torch.Tensor:
    """A (h, w) float64 density map; leading axes of size 1 are dropped."""
    array = _load_array(path)
    if array.dtype.kind not in "fiub":
        raise DataError(f"prediction {path} holds {array.dtype} values, not numbers")
    if array.ndim < 2 or any(int(n) != 1 for n in array.shape[:-2]) or min(array.shape) < 1:
        raise DataError(f"prediction {path} has shape {tuple(array.shape)}; expected (h, w), "
                        "(1, h, w) or (1, 1, h, w)")
    density = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float64))
    density = density.reshape(array.shape[-2:])
    if not torch.isfinite(density).all():
        raise DataError(f"prediction {path} holds NaN or infinite values")
    total = float(density.sum())
    if total < 0:
        raise DataError(f"prediction {path} has a negative total count ({total:.3g})")
    return density


def read_points(path: Path) -> torch.Tensor:
    """(N, 2) float64 (x, y) points from a .json or .txt file."""
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(path.read_text())
            # {"points": [...]} as in the dataset's labels, or the bare list.
            data = data.get("points", "no points key") if isinstance(data, dict) else data
            array = np.asarray(data, dtype=np.float64)
        else:
            lines = path.read_text().replace(",", " ").split("\n")
            array = np.asarray([line.split() for line in lines if line.strip()], dtype=np.float64)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, TypeError, ValueError):
        raise DataError(f"prediction {path} is not a list of [x, y] points") from None
    array = array.reshape(0, 2) if array.size == 0 else array
    if array.ndim != 2 or array.shape[1] < 2:
        raise DataError(f"prediction {path} holds points of shape {array.shape}; expected N x 2")
    if not np.isfinite(array[:, :2]).all():
        raise DataError(f"prediction {path} holds a NaN or infinite coordinate")
    return torch.from_numpy(np.ascontiguousarray(array[:, :2]))


def read_prediction(path: Path) -> Prediction:
    if path.suffix.lower() in MAP_SUFFIXES:
        return Prediction(path, density=read_map(path))
    return Prediction(path, points=read_points(path))


def scan(pred_dir: Path, ids: list[str]) -> tuple[dict[str, Path], list[str], list[Path]]:
    """Which file holds each id (``.npy`` first), the ids without one, and the other files."""
    if not pred_dir.exists():
        raise UsageError(f"prediction folder {pred_dir} does not exist")
    if not pred_dir.is_dir():
        raise UsageError(f"prediction folder {pred_dir} is not a folder")
    wanted = set(ids)
    found: dict[str, Path] = {}
    extra = []
    rank = {suffix: i for i, suffix in enumerate(SUFFIXES)}
    files = sorted((p for p in pred_dir.iterdir() if p.is_file()),
                   key=lambda p: (p.stem, rank.get(p.suffix.lower(), len(rank))))
    for path in files:
        if path.stem in wanted and path.suffix.lower() in rank and path.stem not in found:
            found[path.stem] = path
        else:
            extra.append(path)
    missing = [i for i in ids if i not in found]
    return found, missing, extra
