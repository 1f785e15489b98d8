"""Reading one pair from disk: JPEG decoding and the three label formats (json, npy, xml)."""

from __future__ import annotations

import json
import re
import warnings
import xml.etree.ElementTree as ET
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torchvision.io import ImageReadMode, decode_image, read_file

from model.data.errors import DataError
from model.data.sample import Sample, to_thermal_channels

_CPP_PREFIX = re.compile(r"^\w+, \S+:\d+, ")


@contextmanager
def torchvision_io():
    """torchvision 0.29 deprecates its image codecs in favour of torchcodec (not a dependency
    here) and warns on every call; silence only that warning, only around our calls."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="torchvision.io")
        yield


def decode(path: Path) -> torch.Tensor:
    """Decode a JPEG once into a (3, H, W) uint8 tensor; any failure is a DataError naming it."""
    try:
        with torchvision_io():
            return decode_image(read_file(str(path)), mode=ImageReadMode.RGB)
    except RuntimeError as exc:
        # torchvision prefixes "op, /src/file.cpp:123, ": keep the first human sentence.
        lines = str(exc).strip().splitlines() or [type(exc).__name__]
        reason = _CPP_PREFIX.sub("", lines[0]).split(". ")[0].rstrip(".")
        raise DataError(f"cannot decode image {path}: {reason}") from None


def _as_points(array: np.ndarray, path: Path) -> torch.Tensor:
    if array.ndim == 1 and array.size == 0:  # "points": [] or an empty npy
        array = array.reshape(0, 2)
    if array.ndim != 2 or array.shape[1] not in (2, 3):
        raise DataError(
            f"label {path} holds points of shape {tuple(array.shape)}; expected N x 2 (x, y) "
            "or N x 3 (x, y, nearest-neighbour distance)"
        )
    points = np.ascontiguousarray(array[:, :2], dtype=np.float32)
    if not np.isfinite(points).all():
        raise DataError(f"label {path} holds a NaN or infinite coordinate")
    return torch.from_numpy(points)


def read_json_points(path: Path) -> torch.Tensor:
    """RGBT-CC's ``{"points": [[x, y], ...], ...}``; every other key is ignored."""
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise DataError(f"cannot read label {path}: {exc.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"label {path} is not valid JSON ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict) or "points" not in data:
        raise DataError(f'label {path} has no "points" key')
    try:
        array = np.asarray(data["points"], dtype=np.float32)
    except (TypeError, ValueError):
        raise DataError(f'label {path} has "points" that are not a list of [x, y]') from None
    return _as_points(array, path)


def read_npy_points(path: Path) -> torch.Tensor:
    """Preprocessed RGBT-CC labels: N x 2 (x, y) or the Bayesian-loss N x 3 (x, y, distance)."""
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"label {path} is not a readable .npy array ({exc})") from None
    return _as_points(array, path)


def read_xml_points(path: Path) -> torch.Tensor:
    """DroneRGBT: ``<annotation><object><point><x>..</x><y>..</y></point></object>...``."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise DataError(f"label {path} is not valid XML ({exc})") from None
    except OSError as exc:
        raise DataError(f"cannot read label {path}: {exc.strerror}") from None
    coords = []
    for point in root.iter("point"):
        x, y = point.findtext("x"), point.findtext("y")
        try:
            coords.append((float(x), float(y)))
        except (TypeError, ValueError):
            raise DataError(f"label {path} has a <point> without numeric <x> and <y>") from None
    return _as_points(np.asarray(coords, dtype=np.float32), path)


def read_points(path: Path) -> torch.Tensor:
    readers = {".json": read_json_points, ".npy": read_npy_points, ".xml": read_xml_points}
    return readers[path.suffix.lower()](path)


def inside(points: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Mask of points on a pixel: 0 <= x < W and 0 <= y < H, the protocol's rasterisation."""
    x, y = points[:, 0], points[:, 1]
    return (x >= 0) & (x < width) & (y >= 0) & (y < height)


def load_pair(
    sample_id: str, rgb_path: Path, thermal_path: Path, label_path: Path, thermal_channels: int = 3
) -> Sample:
    """Decode both images and read the label; a size mismatch is a DataError naming both files."""
    rgb, thermal = decode(rgb_path), decode(thermal_path)
    points = read_points(label_path)
    if rgb.shape != thermal.shape:
        raise DataError(
            f"RGB {rgb_path} is {rgb.shape[-1]}x{rgb.shape[-2]} but thermal {thermal_path} is "
            f"{thermal.shape[-1]}x{thermal.shape[-2]}"
        )
    keep = inside(points, rgb.shape[-2], rgb.shape[-1])
    return Sample(
        id=sample_id,
        rgb=rgb,
        thermal=to_thermal_channels(thermal, thermal_channels),
        points=points[keep].contiguous(),
        dropped=int((~keep).sum()),
    )
